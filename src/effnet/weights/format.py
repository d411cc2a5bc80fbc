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
from effnet.weights.foreign import load_foreign, timm_names
from effnet.weights.safe import read_safetensors

CONFIG, WEIGHTS = "config.json", "model.safetensors"
FORMAT, FORMAT_VERSION = "effnet", 2


def timm_builds(arch: Architecture) -> bool:
    """Whether timm's model of this name is this network (so timm can load the folder)."""
    from effnet.registry import ARCHITECTURES

    if arch.name not in ARCHITECTURES:
        return False
    same = ARCHITECTURES[arch.name]().replace(norm=arch.norm)
    keys = ("stem", "stages", "head", "padding", "activation")
    return all(getattr(same, k) == getattr(arch, k) for k in keys)


def make_config(model: torch.nn.Module, class_names: list[str] | None) -> dict[str, Any]:
    """Ours and timm's at once: ``effnet_architecture`` rebuilds the network exactly;
    ``architecture`` (its name), ``model_args``, ``pretrained_cfg`` and ``label_names``
    are what timm's ``create_model("hf-hub:...")`` reads (format 1 kept the architecture
    object under ``architecture``; it still loads)."""
    arch = model.arch
    config: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "effnet_version": __version__,
        "architecture": arch.name,
        "effnet_architecture": arch.to_dict(),
        "num_classes": model.num_classes,
        "in_chans": model.in_chans,
        "class_names": class_names,
        "label_names": class_names,
        "preprocessing": preprocessing(arch),
        "pretrained_cfg": {k: v for k, v in model.pretrained_cfg.items() if k in TIMM_CFG_KEYS}
        | {"num_classes": model.num_classes},  # fmt: skip
    }
    timm_eps = 1e-3 if arch.name.startswith("tf_") else 1e-5
    if timm_builds(arch) and arch.norm.eps != timm_eps:
        config["model_args"] = {"bn_eps": arch.norm.eps}
    return config


# the pretrained_cfg fields a saved model keeps (timm's names)
TIMM_CFG_KEYS = ("tag", "input_size", "interpolation", "crop_pct", "crop_mode", "mean", "std",
                 "first_conv", "classifier", "license", "hf_hub_id")  # fmt: skip


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
        class_names = check_class_names([str(c) for c in class_names], model.num_classes,
                                        "save_pretrained")  # fmt: skip
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    tensors = timm_names(tensors)  # timm's parameter names (ours but for unexpanded MBConv)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "names": "timm"}
    atomic_write_with(out / WEIGHTS, lambda tmp: save_file(tensors, tmp, meta))
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


def check_class_names(names: Any, num_classes: int | None, where: str) -> list[str] | None:
    """A config's class names (ours: ``class_names``, timm's: ``label_names``), checked:
    strings, one per class, no two alike; None when the config has none."""
    if names is None:
        return None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise EffnetError(f"{where}: class_names must be a list of strings")
    if num_classes is not None and len(names) != num_classes:
        raise EffnetError(
            f"{where}: class_names lists {len(names)} names for a model of {num_classes} classes"
        )
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise EffnetError(f"{where}: class name {n!r} appears twice")
        seen.add(n)
    return names


def is_effnet_config(config: dict[str, Any]) -> bool:
    """Ours describes the architecture as an object (format 2: ``effnet_architecture``;
    format 1: ``architecture``); a timm hub config only names it."""
    return isinstance(config.get("effnet_architecture") or config.get("architecture"), dict)


def config_architecture(config: dict[str, Any], where: str) -> Architecture:
    try:
        return Architecture.from_dict(config.get("effnet_architecture") or config["architecture"])
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
    model.class_names = check_class_names(config.get("class_names"), num_classes,
                                          str(folder / CONFIG))  # fmt: skip
    return model.eval()
