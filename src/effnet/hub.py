"""The user-facing layer above the model builder and the weights: ``create_model``,
``list_models``, ``from_pretrained``, ``save_pretrained`` and ``convert`` (what ``import
effnet`` offers), with timm's names and meanings.

The layers below never import upwards: ``effnet.registry`` maps names to architectures (no
torch), ``effnet.resolve`` turns what a user types into an architecture and a place for
its weights, ``effnet.model`` builds, ``effnet.weights`` reads and writes weights; this
module puts them together.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from effnet.arch import Architecture
from effnet.errors import EffnetError
from effnet.model import Network, build
from effnet.registry import list_models
from effnet.resolve import Resolved, resolve
from effnet.weights import convert, from_pretrained, load_pretrained, save_pretrained
from effnet.weights.foreign import set_eps

__all__ = [
    "convert", "create_model", "from_pretrained", "list_models", "push_to_hub", "save_pretrained",
]  # fmt: skip

log = logging.getLogger("effnet")


def create_model(
    model_name: str | Path | Architecture,
    pretrained: bool | str | Path | None = False,
    num_classes: int | None = None,
    in_chans: int | None = None,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    cache_dir: str | Path | None = None,
    revision: str | None = None,
    **overrides: Any,
) -> Network:
    """A model by name (``efficientnet_b0``, ``efficientnet_b0.ra_in1k``), hub repository
    (``hf-hub:timm/efficientnet_b0.ra_in1k``), saved model or run folder, or architecture
    JSON file or object (see ``effnet.resolve``).

    ``pretrained=True`` loads the published weights of the name's tag (its default tag
    without one) from the hub or torchvision's URL, cached in the standard places;
    ``pretrained=PATH`` a local file or folder in any format effnet reads. ``num_classes``
    defaults to the weights' (1000 without weights); another number keeps the backbone and
    starts a new classifier (a one-line notice says so). ``in_chans`` other than the
    weights' adapts the stem as timm does. ``features_only=True`` returns the feature maps
    at ``out_indices`` (default: every stride). ``overrides`` scale the architecture
    (``depth=``, ``width=``, ``resolution_mult=``, ``phi=``) or replace fields
    (``dropout=``, ``drop_path=``, ``resolution=`` in pixels, ``padding=``, ...); timm's
    ``drop_rate`` / ``drop_path_rate`` mean dropout / drop_path.
    """
    for theirs, ours in (("drop_rate", "dropout"), ("drop_path_rate", "drop_path")):
        if theirs in overrides:
            overrides[ours] = overrides.pop(theirs)
    r = resolve(model_name, pretrained, cache_dir=cache_dir, revision=revision, **overrides)
    classes = num_classes if num_classes is not None else r.num_classes
    classes = 1000 if classes is None else classes
    chans = in_chans if in_chans is not None else (r.in_chans or 3)
    model = build(r.arch, num_classes=classes, in_chans=chans, features_only=features_only,
                  out_indices=out_indices)  # fmt: skip
    if r.weights is not None:
        load_weights(model, r)
    if r.pretrained_cfg:  # the weights' record; the input as this model takes it
        own = {k: model.pretrained_cfg[k] for k in INPUT_FIELDS}
        model.pretrained_cfg = {**model.pretrained_cfg, **r.pretrained_cfg, **own,
                                "num_classes": classes}  # fmt: skip
    return model


# pretrained_cfg fields that follow the model built (in_chans, resolution= and other
# overrides), not the tag: the tag's own values are already in the architecture
INPUT_FIELDS = ("input_size", "interpolation", "crop_pct", "mean", "std")


def load_weights(model: Network, r: Resolved) -> None:
    """``r``'s weights into ``model``; a classifier for other classes is left new (said on
    one line), as are the class names, which only the weights' own classes keep."""
    head = not model.features_only and model.num_classes > 0
    theirs = r.num_classes
    if head and theirs is not None and theirs != model.num_classes:
        log.warning(
            "effnet: %s weights have %d classes; the model has %d: its classifier is new "
            "(randomly initialised), the rest is loaded",
            r.label, theirs, model.num_classes,
        )  # fmt: skip
        head = False
    try:
        load_pretrained(model, r.weights, source=r.source, head=head)  # type: ignore[arg-type]
    except EffnetError as e:
        if not head or theirs is not None or "classifier." not in str(e):
            raise
        log.warning("effnet: %s weights: classifier of another size; it is new", r.label)
        load_pretrained(model, r.weights, source=r.source, head=False)  # type: ignore[arg-type]
        head = False
    if r.eps is not None:  # the config's epsilon, not the source's convention
        set_eps(model, r.eps)
    names = r.class_names
    if names is None and head and (r.pretrained_cfg or {}).get("num_classes") == 1000:
        from effnet.pretrained import imagenet_classes

        names = imagenet_classes() if model.num_classes == 1000 else None
    if head and names is not None and len(names) == model.num_classes:
        model.class_names = list(names)


def push_to_hub(
    model: Network,
    repo_id: str,
    class_names: list[str] | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str = "Upload effnet model",
    token: str | None = None,
) -> str:
    """Save ``model`` (``save_pretrained``: a folder timm loads too) and upload it to the
    hub repository ``repo_id`` (created if missing) through huggingface_hub, to
    ``HF_ENDPOINT`` when set. Returns the commit's URL."""
    import tempfile

    from huggingface_hub import HfApi

    from effnet.pretrained.fetch import endpoint, split_repo

    repo, rev = split_repo(repo_id)
    revision = revision or rev
    api = HfApi(endpoint=endpoint(), token=token)
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_pretrained(model, Path(tmp) / "model", class_names=class_names)
        api.create_repo(repo, private=private, exist_ok=True)
        info = api.upload_folder(folder_path=str(folder), repo_id=repo, revision=revision,
                                 commit_message=commit_message)  # fmt: skip
    return str(getattr(info, "commit_url", info))
