"""Argument helpers shared by the sub-command modules."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from effnet.errors import EffnetError
from effnet.scaling import ALPHA, BETA, GAMMA


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return v


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (``--num-classes 0`` would rank feature channels)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return v


def add_scaling_args(p: argparse.ArgumentParser) -> None:
    """--phi (with --alpha/--beta/--gamma) or --width/--depth/--resolution-mult multipliers;
    --image-size in pixels. ``resolution`` always means pixels, as in the JSON files."""
    g = p.add_argument_group("scaling")
    g.add_argument("--phi", type=float, help="compound coefficient (any real number)")
    g.add_argument("--alpha", type=float, help=f"depth base (default {ALPHA})")
    g.add_argument("--beta", type=float, help=f"width base (default {BETA})")
    g.add_argument("--gamma", type=float, help=f"resolution base (default {GAMMA})")
    g.add_argument("--width", type=float, help="width multiplier")
    g.add_argument("--depth", type=float, help="depth multiplier")
    g.add_argument(
        "--resolution-mult", type=float, help="resolution multiplier, the paper's r (2 = twice)"
    )
    g.add_argument("--image-size", type=int, help="input resolution in pixels")
    g.add_argument("--resolution", type=_ambiguous_resolution, help=argparse.SUPPRESS)


def _ambiguous_resolution(text: str) -> float:
    raise argparse.ArgumentTypeError(
        f"is ambiguous ({text}): give --resolution-mult {text} for the paper's multiplier r, "
        f"or --image-size N for pixels"
    )


def scaling_overrides(args: argparse.Namespace) -> dict[str, Any]:
    for name in ("width", "depth", "resolution_mult"):
        v = getattr(args, name)
        if v is not None and not v > 0:
            flag = name.replace("_", "-")
            raise EffnetError(f"--{flag} must be a positive multiplier, got {v}")
    if args.phi is not None and any(
        getattr(args, k) is not None for k in ("width", "depth", "resolution_mult")
    ):
        raise EffnetError("give either --phi or --width/--depth/--resolution-mult, not both")
    out: dict[str, Any] = dict(
        phi=args.phi,
        alpha=args.alpha,
        beta=args.beta,
        gamma=args.gamma,
        width=args.width,
        depth=args.depth,
        resolution_mult=args.resolution_mult,
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


# -- one meaning per name: old spellings accepted for one release, with a notice --------------
class Deprecated(argparse.Action):
    """An old flag: stores into the new one's ``dest`` and says once, on stderr, what to use."""

    def __init__(
        self, option_strings: list[str], dest: str, new: str = "", why: str = "", **kw: Any
    ) -> None:
        self.new = new
        self.why = why or "will mean only what it means for 'effnet train'"
        super().__init__(option_strings, dest, **kw)

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        import sys

        print(f"effnet: {option} is deprecated here and {self.why}; use {self.new}",
              file=sys.stderr)  # fmt: skip
        setattr(namespace, self.dest, values)


def add_processes_arg(p: argparse.ArgumentParser, default: int | None, what: str) -> None:
    """``--processes N``: Optuna worker processes on this machine. ``--workers`` means
    DataLoader decoding processes everywhere (effnet train/eval); here it is the old
    spelling of ``--processes``, accepted for one release."""
    p.add_argument("--processes", type=int, default=default, metavar="N", help=what)
    p.add_argument("--workers", dest="processes", type=int, action=Deprecated,
                   new="--processes", help=argparse.SUPPRESS)  # fmt: skip


def add_search_folder_args(p: argparse.ArgumentParser, what: str, out_default: str) -> None:
    """The options every search shares: its storage and name, worker processes, joining,
    its output folder and replacing one."""
    p.add_argument("--storage", metavar="URL", help="Optuna storage: a .journal file or RDB URL")
    p.add_argument("--name", help=f"{what} name in the storage (default from the config)")
    add_processes_arg(p, 1, "worker processes on this machine (1)")
    p.add_argument("--join", action="store_true", help="join the search already in --storage")
    p.add_argument("--out", metavar="DIR", help=f"output folder (default {out_default})")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an output folder holding another search (only one effnet made)",
    )
