"""Checkpoints: atomic writes, safe loads, and the RNG states that make resume exact.

``last.pt`` is written atomically (temp file, fsync, rename); before it is replaced the
old one is copied to ``previous.pt``, so some checkpoint exists at every instant. A
checkpoint that fails to load (truncated by a full disk, a copy cut short, bit rot) is
reported and the previous one is used instead. Everything stored is tensors and plain
Python values, so ``torch.load(weights_only=True)`` can read it.
"""

from __future__ import annotations

import random
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from effnet.errors import EffnetError
from effnet.io import atomic_write_with

LAST, PREVIOUS, BEST = "last.pt", "previous.pt", "best.pt"


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) generator states, as loadable plain values."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": list(random.getstate()[1]),
        "python_gauss": random.getstate()[2],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate((3, tuple(state["python"]), state["python_gauss"]))
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def training_state(state: Any, extra: dict[str, Any]) -> dict[str, Any]:
    """What ``last.pt`` holds: a ``TrainState``'s weights, EMA, optimizer, counters, RNGs."""
    return {
        "model": state.raw.state_dict(),
        "ema": state.ema.state_dict() if state.ema is not None else None,
        "optimizer": state.optimizer.state_dict(),
        "step": state.step,
        "loss_sum": state.loss_sum,
        "loss_count": state.loss_count,
        "rng": rng_state(),
        "augment_rng": state.transform.stream_state(),  # its own stream (None: global RNG)
        **extra,
    }


def restore(state: Any, ck: dict[str, Any]) -> None:
    """Put a ``training_state`` checkpoint back into a freshly built ``TrainState``."""
    state.raw.load_state_dict(ck["model"])
    if state.ema is not None and ck["ema"] is not None:
        state.ema.load_state_dict(ck["ema"])
    state.optimizer.load_state_dict(ck["optimizer"])
    state.step, state.loss_sum, state.loss_count = ck["step"], ck["loss_sum"], ck["loss_count"]
    set_rng_state(ck["rng"])
    state.transform.load_stream_state(ck.get("augment_rng"))


def save(folder: str | Path, state: dict[str, Any], name: str = LAST) -> Path:
    """Write ``state`` to ``folder/name`` atomically; the replaced ``last.pt`` is kept."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    if name == LAST and target.exists():
        _keep_as_previous(target, folder / PREVIOUS)
    return atomic_write_with(target, lambda tmp: torch.save(state, tmp))


def _keep_as_previous(last: Path, previous: Path) -> None:
    """Copy ``last`` to ``previous`` atomically; ``last`` never disappears meanwhile.

    A copy, not a hard link: damage to one file in place must not reach the other."""
    atomic_write_with(previous, lambda tmp: shutil.copyfile(last, tmp))


def load_file(path: str | Path) -> dict[str, Any]:
    """Load one checkpoint; any damage becomes an EffnetError naming the file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise EffnetError(f"checkpoint {path} does not exist") from None
    except Exception as e:  # torch reports truncation as RuntimeError/EOFError/UnpicklingError
        reason = str(e).splitlines()[0].split(". ")[0] if str(e) else type(e).__name__
        raise EffnetError(f"checkpoint {path} is damaged ({reason})") from None


def load_latest(folder: str | Path) -> dict[str, Any]:
    """``last.pt``, or ``previous.pt`` when the last one is missing or damaged."""
    folder = Path(folder)
    errors = []
    for name in (LAST, PREVIOUS):
        path = folder / name
        if not path.exists():
            if name == LAST and (folder / PREVIOUS).exists():
                print(f"effnet: warning: {path} is missing; using {PREVIOUS}", file=sys.stderr)
            continue
        try:
            return load_file(path)
        except EffnetError as e:
            errors.append(str(e))
            print(f"effnet: warning: {e}; trying the previous checkpoint", file=sys.stderr)
    detail = "; ".join(errors) if errors else "none found"
    raise EffnetError(f"no usable checkpoint in {folder} ({detail})")
