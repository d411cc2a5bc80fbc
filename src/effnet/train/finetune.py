"""Fine-tuning: a run that starts from trained weights, with a new head for its classes.

The init weights are anything ``effnet convert`` reads (our model folder, a timm hub
folder, a timm / torchvision / efficientnet_pytorch / effnet state-dict file). Everything
but the classifier is loaded and checked tensor by tensor; the classifier is the model's
own, built for the data's classes. The run keeps the init model's preprocessing (mean,
std, resolution, crop, interpolation) when the init says it (our folders do), so the
backbone sees images as it was trained on them.

Three recipe fields shape the run (``effnet.train.recipe``): ``freeze_epochs`` (the
backbone, i.e. all but the classifier, gets no updates and runs in eval mode, BN statistics
included, for that many epochs), ``backbone_lr_mult`` (its learning rate as a multiple of
the head's, via optimizer parameter groups) and ``freeze_bn`` (BN statistics and affine
frozen for the whole run). What is frozen is a function of the step alone, so a resume
across the unfreeze is exact. run.json records the init as ``"init"``.

    effnet train --init runs/pretrained/model --data my_images --freeze-epochs 2 \\
        --backbone-lr-mult 0.1 --out runs/finetuned
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from torch import nn

from effnet.arch import PREPROCESSING_FIELDS, Architecture
from effnet.errors import EffnetError
from effnet.record import Record
from effnet.registry import get_arch
from effnet.resolve import HUB, resolve
from effnet.weights.format import CONFIG, read_config
from effnet.weights.load import load_pretrained

HEAD = ("classifier",)  # the part a fine-tuning run replaces; the rest is the backbone
TRAIN_MODE_WHEN_FROZEN = ("classifier", "dropout", "global_pool")
# the init's eval transform is kept, its resolution too unless the run gives one
PREPROCESSING = tuple(k for k in PREPROCESSING_FIELDS if k != "resolution")
RESOLUTION_KEYS = ("phi", "resolution_mult", "resolution")


@dataclass(frozen=True)
class Init(Record):
    """Where a fine-tuning run's weights come from (run.json's ``"init"``)."""

    path: str  # absolute path of the model folder or checkpoint file
    source: str = "auto"  # auto | effnet | timm | torchvision | efficientnet_pytorch
    name: str | None = None  # the NAME.TAG or hf-hub: id the weights are published as

    KIND: ClassVar[str] = "init"

    def to_dict(self) -> dict[str, Any]:
        """As saved in a run's run.json: ``name`` only for published weights (so the
        runs made before it existed compare equal)."""
        d = super().to_dict()
        if d.get("name") is None:
            d.pop("name", None)
        return d


def as_init(init: str | Path | Init | None) -> Init | None:
    """``init`` as a record with an absolute path (a run folder means its ``model/``); a
    published name (``efficientnet_b0.ra_in1k``, ``hf-hub:timm/...``) is downloaded into
    the standard cache first."""
    if init is None or isinstance(init, Init):
        return init
    p = Path(init).expanduser()
    if not p.exists() and is_published(str(init)):
        return _published(str(init))
    if not p.exists():
        raise EffnetError(f"init weights not found: {p}")
    if _folder_config(p) is None and (p / "model" / "config.json").is_file():
        p = p / "model"  # a run folder: its exported best model
    return Init(str(p.resolve()))


def is_published(text: str) -> bool:
    from effnet.pretrained import split_name
    from effnet.registry import ARCHITECTURES

    return text.startswith(HUB) or split_name(text)[0] in ARCHITECTURES


def _published(name: str) -> Init:
    r = resolve(name, pretrained=True)
    assert r.weights is not None  # pretrained=True resolves weights or raises
    return Init(str(r.weights.absolute()), source=r.source, name=name)


def saved_init(config: dict[str, Any]) -> Init | None:
    """The init of a saved run config (None: the run trained from scratch)."""
    return Init.from_dict(config["init"]) if config.get("init") else None


def is_head(name: str) -> bool:
    """Whether parameter ``name`` belongs to the classifier (not the backbone)."""
    return name.split(".", 1)[0] in HEAD


def check_recipe(recipe: Any, init: Init | None) -> None:
    """Fine-tuning fields without init weights would freeze a random network: refused."""
    if init is not None:
        return
    given = [
        f"{k} {getattr(recipe, k)}"
        for k, default in (("freeze_epochs", 0), ("backbone_lr_mult", 1.0), ("freeze_bn", False))
        if getattr(recipe, k) != default
    ]
    if given:
        raise EffnetError(f"recipe {', '.join(given)} needs init weights (--init MODEL_DIR)")


def _folder_config(path: Path) -> dict[str, Any] | None:
    """The config.json of our model folder or a timm hub folder, else None (also for a
    run folder's, which describes a run)."""

    if not (path.is_dir() and (path / CONFIG).is_file()):
        return None
    try:
        return read_config(path)
    except EffnetError:
        return None


def init_architecture(model: Any, init: Init, overrides: dict[str, Any]) -> Architecture:
    """The architecture to fine-tune: ``model`` when named, else the one the init describes.

    Our folders describe theirs, a timm hub folder or repository names it, a published
    name is one; a bare state dict does not, so it needs ``model``. The init's
    preprocessing (its config's, or its tag's) replaces the architecture's, except the
    resolution when ``overrides`` set one.
    """

    path = Path(init.path)
    described = init.name if init.name else path if _folder_config(path) is not None else None
    if described is None and model is None:
        raise EffnetError(
            f"init weights {path} do not say their architecture: name the model "
            f"(e.g. effnet train efficientnet_b0 --init {path})"
        )
    r = resolve(described, **({} if model is not None else overrides)) if described else None
    arch = get_arch(model, **overrides) if model is not None else r.arch  # type: ignore[union-attr]
    if r is None:
        return arch
    keep = {k: getattr(r.arch, k) for k in PREPROCESSING}
    if not any(overrides.get(k) is not None for k in RESOLUTION_KEYS):
        keep["resolution"] = r.arch.resolution
    return arch.replace(**keep)


def load_init(net: nn.Module, init: Init) -> dict[str, Any]:
    """Load the backbone of ``init`` into ``net`` (its classifier stays new); what was loaded.

    A checkpoint of another architecture fails on one line naming the first tensor that
    does not fit. An RGB (or grayscale) stem is adapted to the data's channels.
    """

    if init.name and not Path(init.path).exists():  # the cache was cleared since: again
        init = _published(init.name)
    try:
        loaded = load_pretrained(net, init.path, source=init.source, head=False)  # type: ignore[arg-type]
    except EffnetError as e:
        raise EffnetError(f"init weights {init.path}: {e}") from None
    return {"source": loaded.source, "tensors": loaded.tensors, "eps": loaded.eps}


def _batch_norms(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


class Freezer:
    """Sets, before every step, which parts of a fine-tuned network train.

    Before ``freeze_epochs`` the backbone's parameters need no gradients (the optimizer
    skips them: no update, no weight decay, no optimizer state yet) and its modules run in
    eval mode; with ``freeze_bn`` every batch norm stays in eval mode and its affine never
    trains. Call :meth:`freeze_bn_parameters` before the optimizer is made, so frozen BN
    parameters are not in it; the backbone's are (they unfreeze later).
    """

    def __init__(self, net: nn.Module, recipe: Any, steps_per_epoch: int) -> None:
        self.net = net
        self.frozen_until = round(recipe.freeze_epochs * steps_per_epoch)
        self.freeze_bn = recipe.freeze_bn
        self.bns = _batch_norms(net) if recipe.freeze_bn else []
        bn_params = {id(p) for m in self.bns for p in m.parameters()}
        self.backbone = [
            p for n, p in net.named_parameters() if not is_head(n) and id(p) not in bn_params
        ]
        self._frozen: bool | None = None

    def freeze_bn_parameters(self) -> None:
        for m in self.bns:
            for p in m.parameters():
                p.requires_grad_(False)

    def __call__(self, state: Any) -> None:
        frozen = state.step < self.frozen_until
        if frozen != self._frozen:
            for p in self.backbone:
                p.requires_grad_(not frozen)
            self._frozen = frozen
        if frozen:
            for name, child in self.net.named_children():
                if name not in TRAIN_MODE_WHEN_FROZEN:
                    child.eval()
        for m in self.bns:
            m.eval()

    @property
    def active(self) -> bool:
        return self.frozen_until > 0 or self.freeze_bn
