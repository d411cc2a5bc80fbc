"""Reading tensors from files without ever running code stored in them.

A ``.pth`` file is a pickle, and unpickling can call any Python function the file
names. Only two readers are used: safetensors (no code at all) and
``torch.load(weights_only=True)``, whose restricted unpickler accepts tensors and plain
containers and refuses everything else. A refused file is reported, never retried with
the unrestricted loader.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from effnet.errors import EffnetError

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".pth.tar")
# training checkpoints keep the weights under one of these keys (first match wins)
CONTAINER_KEYS = ("state_dict", "model", "model_state_dict", "module", "net")
# prefixes added by DistributedDataParallel and torch.compile
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def read_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and the string metadata of a safetensors file."""

    p = Path(path)
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = dict(f.metadata() or {})
            return {k: f.get_tensor(k) for k in f.keys()}, meta
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as e:
        raise EffnetError(f"cannot read safetensors file {p}: {e}") from None


def read_pickle(path: str | Path) -> Any:
    """``torch.load(weights_only=True)``: tensors and containers only, never code."""
    p = Path(path)
    try:
        with warnings.catch_warnings():  # torch's note on the pickle protocol: ours is the line
            warnings.filterwarnings("ignore", message=".*pickle protocol", category=UserWarning)
            return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EffnetError(
            f"refusing to load {p}: it is a pickle that needs more than tensors to load "
            f"(it could run code); only weights_only-safe files are accepted ({first})"
        ) from None
    except (OSError, EOFError, RuntimeError, zipfile.BadZipFile, ValueError) as e:
        raise EffnetError(f"cannot read weights file {p}: {e}") from None
    except Exception as e:  # a text or random file: the unpickler fails in many ways
        raise EffnetError(
            f"cannot read weights file {p}: not a PyTorch checkpoint ({type(e).__name__}: {e})"
        ) from None


def unwrap(obj: Any, where: str) -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint: plain, under a container key, DDP-prefixed."""
    if isinstance(obj, Mapping) and not _is_state_dict(obj):
        for key in CONTAINER_KEYS:
            if key in obj and isinstance(obj[key], Mapping):
                return unwrap(obj[key], where)
    if not isinstance(obj, Mapping) or not _is_state_dict(obj):
        raise EffnetError(f"{where}: holds no state dict (expected a mapping of name -> tensor)")
    sd = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    for prefix in WRAPPER_PREFIXES:
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix) :]: v for k, v in sd.items()}
    return sd


def _is_state_dict(obj: Mapping) -> bool:
    return (
        bool(obj)
        and all(isinstance(k, str) for k in obj)
        and any(isinstance(v, torch.Tensor) for v in obj.values())
    )


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A state dict (and safetensors metadata, else empty) from a file of any known kind."""
    p = Path(path)
    if not p.is_file():
        raise EffnetError(f"weights file not found: {p}")
    if p.name.endswith(SAFETENSORS_SUFFIXES) or _looks_like_safetensors(p):
        return read_safetensors(p)
    return unwrap(read_pickle(p), str(p)), {}


def _looks_like_safetensors(p: Path) -> bool:
    """safetensors starts with an 8-byte header length followed by a JSON object."""
    try:
        with open(p, "rb") as f:
            head = f.read(9)
    except OSError as e:
        raise EffnetError(f"cannot read weights file {p}: {e.strerror}") from None
    return len(head) == 9 and head[8:9] == b"{"
