"""``load_pretrained``: weights from any supported local file or directory into a model.

Accepted: our directory (config.json + model.safetensors), a timm hub folder (its
config.json names the architecture; weights in model.safetensors or
pytorch_model.bin), or a single ``.safetensors`` / ``.pth`` / ``.pt`` / ``.bin`` file
holding an effnet, timm, torchvision or efficientnet_pytorch state dict (plain or inside a
training checkpoint). Nothing is downloaded and no code from a file is run.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from effnet.errors import EffnetError
from effnet.model import build
from effnet.registry import get_arch
from effnet.weights.foreign import Loaded, Source, load_foreign
from effnet.weights.format import (
    CONFIG,
    FORMAT,
    WEIGHTS,
    config_architecture,
    is_effnet_config,
    read_config,
    save_pretrained,
)
from effnet.weights.safe import read_state_dict

HUB_WEIGHTS = (WEIGHTS, "pytorch_model.bin", "model.pth")


def load_pretrained(
    model: nn.Module, path: str | Path, source: Source = "auto", head: bool = True
) -> Loaded:
    """Load weights from ``path`` into ``model`` in place (see the module docstring).

    ``head=False``: the checkpoint's classifier is ignored; the model keeps its own."""
    p = Path(path)
    if p.is_dir():
        return _load_directory(model, p, source, head)
    if not p.exists():
        raise EffnetError(f"pretrained weights not found: {p}")
    state_dict, meta = read_state_dict(p)
    if source == "auto" and meta.get("format") == FORMAT:
        source = "effnet"
    return load_foreign(model, state_dict, source=source, head=head)


def _load_directory(model: nn.Module, folder: Path, source: Source, head: bool) -> Loaded:
    if (folder / CONFIG).is_file():
        config = read_config(folder)
        if is_effnet_config(config):
            return _load_effnet_directory(model, folder, config, head)
    for name in HUB_WEIGHTS:
        if (folder / name).is_file():
            state_dict, meta = read_state_dict(folder / name)
            if source == "auto" and meta.get("format") == FORMAT:
                source = "effnet"
            return load_foreign(model, state_dict, source=source, head=head)
    raise EffnetError(f"{folder} holds no weights ({', '.join(HUB_WEIGHTS)})")


def _load_effnet_directory(model: nn.Module, folder: Path, config: dict, head: bool) -> Loaded:
    """Weights saved by us: their architecture's epsilon comes along; padding must agree."""
    saved = config_architecture(config, str(folder / CONFIG))
    ours = model.arch
    if saved.padding != ours.padding:
        raise EffnetError(
            f"weights in {folder} were trained with {saved.padding.value!r} padding but "
            f"{ours.name} uses {ours.padding.value!r}; use effnet.from_pretrained({str(folder)!r})"
        )
    state_dict, _ = read_state_dict(folder / WEIGHTS)
    loaded = load_foreign(model, state_dict, source="effnet", eps=saved.norm.eps, head=head)
    names = config.get("class_names")
    if head and names is not None and len(names) == getattr(model, "num_classes", -1):
        model.class_names = names
    return loaded


def convert(
    path: str | Path,
    model: str | Path,
    directory: str | Path,
    source: Source = "auto",
    num_classes: int = 1000,
    class_names: list[str] | None = None,
    overwrite: bool = False,
) -> tuple[Path, Loaded]:
    """A foreign or effnet checkpoint into our format: ``model`` names its architecture.

    The name carries what the state dict cannot: "same" padding for ``tf_efficientnet_*``
    (timm's tf_ ports and every ``efficientnet_pytorch`` checkpoint).
    """
    out = Path(directory)
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise EffnetError(f"{out} is not empty (pass --force to replace it)")
    net = build(get_arch(model), num_classes=num_classes)
    loaded = load_pretrained(net, path, source=source)
    return save_pretrained(net, out, class_names=class_names, overwrite=overwrite), loaded
