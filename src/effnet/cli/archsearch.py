"""effnet search-architecture: step 0 of the paper's method, the search for a baseline."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from effnet.cli._common import add_search_folder_args

# what a --target-flops suffix multiplies by
SUFFIXES = {"k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "B": 1e9}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search-architecture",
        help="MnasNet-style search for a baseline under a multiply-add target (Optuna)",
        description="Search a space of MBConv stages for the network that maximises "
        "ACC(m) x [FLOPS(m)/T]^w (section 4 of the paper). Workers are plain processes "
        "sharing --storage: run this command again with --join to help.",
    )
    p.add_argument("config", nargs="?", help="search JSON file (fields of ArchSearchConfig)")
    p.add_argument("--quick", action="store_true", help="a tiny Fashion-MNIST proxy (16 px)")
    p.add_argument(
        "--target-flops", metavar="T", help="target multiply-adds T, e.g. 400M, 1.3M or 2.5e6"
    )
    p.add_argument("--w", metavar="W", help="the objective's exponent (default -0.07)")
    p.add_argument(
        "--hard",
        action="store_true",
        help="hard constraint: w = 0 at or under T, -1 above (MnasNet)",
    )
    p.add_argument("--trials", metavar="N", help="complete trials to run (a config's or 24)")
    p.add_argument("--sampler", choices=["tpe", "nsga2", "random"], help="Optuna sampler")
    p.add_argument("--space", metavar="FILE", help="search space JSON (default: B0-like)")
    p.add_argument(
        "--show-space", action="store_true", help="print the space (--space or the default)"
    )
    add_search_folder_args(p, "search", "runs/archsearch-<name>")
    p.set_defaults(func=cmd_search_architecture)


def parse_macs(text: str) -> float:
    """'400M', '1.3M', '2.5e6', '1G' -> multiply-adds."""
    from effnet.errors import EffnetError

    t = text.strip()
    scale = SUFFIXES.get(t[-1:], 1.0)
    number = t[:-1] if t[-1:] in SUFFIXES else t
    try:
        value = float(number) * scale
    except ValueError:
        raise EffnetError(
            f"--target-flops: not a number of multiply-adds: {text!r} (e.g. 400M, 2.5e6)"
        ) from None
    if not (math.isfinite(value) and value > 0):
        raise EffnetError(f"--target-flops must be a positive number, got {text!r}")
    return value


def _number(text: str, flag: str, kind: type) -> Any:
    from effnet.errors import EffnetError

    try:
        value = kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise EffnetError(f"{flag}: not {what}: {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise EffnetError(f"{flag} must be finite, got {text!r}")
    return value


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if args.target_flops is not None:
        changes["target_macs"] = parse_macs(args.target_flops)
    if args.w is not None:
        changes["w"] = _number(args.w, "--w", float)
    if args.hard:
        changes["hard"] = True
    if args.trials is not None:
        changes["trials"] = _number(args.trials, "--trials", int)
    if args.sampler is not None:
        changes["sampler"] = args.sampler
    if args.space is not None:
        changes["space"] = args.space
    return changes


def _config(args: argparse.Namespace) -> Any:
    """The config from a file, --quick or the defaults, with the options applied (before it
    is checked: a file without a target is completed by --target-flops)."""
    from effnet.archsearch.config import ArchSearchConfig, quick_config
    from effnet.errors import EffnetError

    if args.config and args.quick:
        raise EffnetError("give a search config or --quick, not both")
    if args.config:
        try:
            data = json.loads(Path(args.config).read_text())
        except (OSError, ValueError) as e:
            raise EffnetError(f"cannot read search config {args.config}: {e}") from None
        if not isinstance(data, dict):
            raise EffnetError(f"{args.config}: a search config is a JSON object")
    else:
        data = quick_config().to_dict() if args.quick else {}
    try:
        return ArchSearchConfig.from_dict({**data, **_overrides(args)})
    except EffnetError as e:
        raise EffnetError(f"{args.config}: {e}" if args.config else str(e)) from None


def cmd_search_architecture(args: argparse.Namespace) -> int:
    import optuna

    from effnet.archsearch.search import run_archsearch
    from effnet.errors import EffnetError
    from effnet.rundir import safe_name

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    workers = args.processes
    if workers < 1:
        raise EffnetError(f"--processes must be >= 1, got {workers}")
    if args.join and args.force:
        raise EffnetError("--force replaces a search folder; it cannot be used with --join")
    if args.show_space:
        from effnet.archsearch.space import SearchSpace, default_space

        space = SearchSpace.load(args.space) if args.space else default_space()
        print(space.to_json())
        return 0
    cfg = None if args.join else _config(args)
    name = args.name or (cfg.name if cfg else None)
    if args.join and name is None:
        raise EffnetError("--join needs the --name of the search in --storage")
    out = Path(args.out or f"runs/archsearch-{safe_name(name, 'search name')}")
    result = run_archsearch(
        cfg, out, storage=args.storage, name=name, processes=workers, log=_log, force=args.force
    )
    if result.best:
        b = result.best
        print(
            f"best: trial {b['trial']}, minival top-1 {b['minival_top1']:.2f}% at "
            f"{b['macs'] / 1e6:.3f}M multiply-adds, reward {b['reward']:.4f} -> "
            f"{out / 'best-arch.json'}"
        )
    print(f"report: {out / 'report.md'}")
    return 0 if result.complete else 1


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
