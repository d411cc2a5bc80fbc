"""Argument helpers shared by the sub-command modules."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from effnet.errors import EffnetError


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return v


def add_scaling_args(p: argparse.ArgumentParser) -> None:
    """--phi (with --alpha/--beta/--gamma) or --width/--depth/--resolution multipliers."""
    g = p.add_argument_group("scaling")
    g.add_argument("--phi", type=float, help="compound coefficient (any real number)")
    g.add_argument("--alpha", type=float, help="depth base (default 1.2)")
    g.add_argument("--beta", type=float, help="width base (default 1.1)")
    g.add_argument("--gamma", type=float, help="resolution base (default 1.15)")
    g.add_argument("--width", type=float, help="width multiplier")
    g.add_argument("--depth", type=float, help="depth multiplier")
    g.add_argument("--resolution", type=float, help="resolution multiplier (2 = twice the size)")
    g.add_argument("--image-size", type=int, help="absolute input resolution in pixels")


def scaling_overrides(args: argparse.Namespace) -> dict[str, Any]:
    for name in ("width", "depth", "resolution"):
        v = getattr(args, name)
        if v is not None and not v > 0:
            raise EffnetError(f"--{name} must be a positive multiplier, got {v}")
    if args.phi is not None and any(
        getattr(args, k) is not None for k in ("width", "depth", "resolution")
    ):
        raise EffnetError("give either --phi or --width/--depth/--resolution, not both")
    out: dict[str, Any] = dict(
        phi=args.phi,
        alpha=args.alpha,
        beta=args.beta,
        gamma=args.gamma,
        width=args.width,
        depth=args.depth,
        resolution_mult=args.resolution,
    )
    if args.image_size is not None:
        out["resolution"] = args.image_size
    return out


def refuse_overwrite(path: str | Path, force: bool = False) -> Path:
    p = Path(path)
    if p.exists() and not force:
        raise EffnetError(f"{p} already exists (pass --force to overwrite)")
    return p


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2))
