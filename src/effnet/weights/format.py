"""Our own format: a directory with ``config.json`` and ``model.safetensors``.

``config.json`` is everything needed to rebuild the model without the code that made it:
the architecture description (the same JSON as ``effnet arch --json``, including the
batch-norm epsilon and padding the weights were trained with), the number of classes
and input channels, the class names, and the eval preprocessing (resolution, crop
fraction, interpolation, mean/std) so that predict/eval never guess it. Weights are in
safetensors, which holds tensors only: loading them cannot run code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from effnet import __version__
from effnet.arch import Architecture, preprocessing
from effnet.errors import EffnetError
from effnet.io import atomic_write_text, atomic_write_with
from effnet.model import Network, build
from effnet.weights.foreign import load_foreign
from effnet.weights.safe import read_safetensors

CONFIG, WEIGHTS = "config.json", "model.safetensors"
FORMAT, FORMAT_VERSION = "effnet", 1


def make_config(model: torch.nn.Module, class_names: list[str] | None) -> dict[str, Any]:

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "effnet_version": __version__,
        "architecture": model.arch.to_dict(),
        "num_classes": model.num_classes,
        "in_chans": model.in_chans,
        "class_names": class_names,
        "preprocessing": preprocessing(model.arch),
    }


def save_pretrained(
    model: torch.nn.Module,
    directory: str | Path,
    class_names: list[str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``config.json`` + ``model.safetensors`` into ``directory``; returns it.

    Refuses a non-empty directory unless ``overwrite``. Each file is written atomically,
    weights first and config last, so a directory with a config is complete.
    ``class_names`` defaults to the model's ``class_names`` attribute, if any.
    """

    if not isinstance(model, Network):
        raise EffnetError(f"save_pretrained needs an effnet model, got {type(model).__name__}")
    out = Path(directory)
    if out.exists() and not out.is_dir():
        raise EffnetError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise EffnetError(f"{out} is not empty; pass overwrite=True (--force) to replace it")
    if class_names is None:
        class_names = getattr(model, "class_names", None)
    if class_names is not None:
        class_names = [str(c) for c in class_names]
        if len(class_names) != model.num_classes:
            raise EffnetError(
                f"{len(class_names)} class names given for a model with {model.num_classes} classes"
            )
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_with(out / WEIGHTS, lambda tmp: save_file(tensors, tmp, {"format": FORMAT}))
    config = make_config(model, class_names)
    atomic_write_text(out / CONFIG, json.dumps(config, indent=2) + "\n")
    return out


def read_config(directory: str | Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a saved model directory (errors name the file)."""
    path = Path(directory) / CONFIG
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise EffnetError(f"{directory} has no {CONFIG}: not a saved effnet model") from None
    except (OSError, json.JSONDecodeError) as e:
        raise EffnetError(f"cannot read {path}: {e}") from None
    if not isinstance(config, dict) or "architecture" not in config:
        raise EffnetError(f"{path} has no 'architecture'")
    return config


def is_effnet_config(config: dict[str, Any]) -> bool:
    """Ours describes the architecture as an object; a timm hub config names it."""
    return isinstance(config.get("architecture"), dict)


def config_architecture(config: dict[str, Any], where: str) -> Architecture:
    try:
        return Architecture.from_dict(config["architecture"])
    except EffnetError as e:
        raise EffnetError(f"{where}: {e}") from None


def from_pretrained(directory: str | Path) -> torch.nn.Module:
    """Rebuild a model saved by ``save_pretrained`` and load its weights (eval mode).

    ``model.class_names`` is the saved list of class names, or None.
    """

    folder = Path(directory)
    if folder.is_file() and folder.name == CONFIG:
        folder = folder.parent
    if not folder.is_dir():
        raise EffnetError(f"model directory not found: {folder}")
    config = read_config(folder)
    if not is_effnet_config(config):
        raise EffnetError(
            f"{folder / CONFIG} is not an effnet config (a timm hub folder?); "
            "use create_model(NAME, pretrained=DIR)"
        )
    arch = config_architecture(config, str(folder / CONFIG))
    try:
        num_classes, in_chans = int(config["num_classes"]), int(config.get("in_chans", 3))
    except (KeyError, TypeError, ValueError):
        raise EffnetError(f"{folder / CONFIG}: 'num_classes' missing or not a number") from None
    model = build(arch, num_classes=num_classes, in_chans=in_chans)
    state_dict, _ = read_safetensors(folder / WEIGHTS)
    load_foreign(model, state_dict, source="effnet")
    model.class_names = config.get("class_names")
    return model.eval()
