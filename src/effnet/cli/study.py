"""effnet study | search-coefficients: the paper's experiments, one command each."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from effnet.cli._common import Deprecated, add_processes_arg, add_search_folder_args
from effnet.errors import EffnetError
from effnet.rundir import safe_name
from effnet.scaling import PAPER_COEFFICIENTS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "study",
        help="single-dimension vs compound scaling study (Fig 3, Fig 4, Table 7)",
        description="Train every point of a scaling study and write results.csv/json, "
        "PNG plots and report.md into the study folder.",
    )
    p.add_argument("config", nargs="?", help="study JSON file (see docs/study.md)")
    p.add_argument("--quick", action="store_true", help="the small CPU study `make run` runs")
    p.add_argument("--out", metavar="DIR", help="study folder (default runs/study-<name>)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted study")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an existing study folder (only one effnet made; after the new study "
        "has validated)",
    )
    p.add_argument("--seeds", type=_ints, help="override the seeds, e.g. 0,1,2")
    p.add_argument("--epochs", type=float, help="override the epochs per point")
    p.add_argument(
        "--epoch-multiples",
        type=_floats,
        metavar="1,2",
        help="train Table 7 at these multiples of the epochs (1,2: the convergence check)",
    )
    p.add_argument("--training-budgets", dest="epoch_multiples", type=_floats,
                   action=Deprecated, new="--epoch-multiples",
                   why="will be removed (a budget is a model's cost)",
                   help=argparse.SUPPRESS)  # fmt: skip
    p.add_argument("--subset", type=int, help="override the number of training images")
    p.add_argument("--no-progress", action="store_true", help="no per-step progress bars")
    p.add_argument(
        "--storage",
        metavar="URL",
        help="share the runs among workers through this Optuna storage (a .journal file or an "
        "RDB URL; default with --processes/--worker: DIR/optuna.journal)",
    )
    add_processes_arg(p, None, "worker processes on this machine (with storage)")
    p.add_argument(
        "--worker", action="store_true", help="join the study in --storage as one more worker"
    )
    p.add_argument(
        "--report", action="store_true", help="only write the report from --storage's results"
    )
    p.set_defaults(func=cmd_study)

    p = sub.add_parser(
        "search-coefficients",
        help="grid-search alpha, beta, gamma under alpha*beta^2*gamma^2 ~= 2 (Optuna)",
        description="Step 1 of compound scaling. Workers are plain processes sharing "
        "--storage: run this command again (with --join) on other machines to help.",
    )
    p.add_argument("config", nargs="?", help="search JSON file (fields of SearchConfig)")
    p.add_argument("--quick", action="store_true", help="a tiny CPU proxy (see docs/study.md)")
    p.add_argument("--phi", type=float, help="scale each candidate by this phi (default 1)")
    p.add_argument("--step", type=float, help="grid spacing (default 0.05)")
    p.add_argument("--tolerance", type=float, help="|alpha*beta^2*gamma^2 - 2| bound (0.1)")
    p.add_argument("--baseline", help="baseline model name or architecture JSON")
    p.add_argument("--image-size", dest="resolution", type=int, metavar="PX",
                   help="proxy base resolution in pixels")  # fmt: skip
    p.add_argument("--resolution", dest="resolution", type=int, action=Deprecated,
                   new="--image-size (pixels)", help=argparse.SUPPRESS)  # fmt: skip
    p.add_argument("--epochs", type=float, help="epochs per candidate")
    p.add_argument("--subset", type=int, help="training images per candidate")
    p.add_argument("--no-prune", action="store_true", help="train every candidate fully")
    add_search_folder_args(p, "study", "runs/search-<name>")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser(
        "compare-baselines",
        help="train several baselines at equal cost and their compound-scaled families",
        description="Did a (searched) baseline earn its place? Each baseline is width-fitted "
        "to the reference's multiply-adds, scaled by phi as B0 is, trained with one recipe "
        "and the same seeds; report.md pairs each with the reference by seed.",
    )
    p.add_argument("config", nargs="?", help="comparison JSON (see docs/archsearch.md)")
    p.add_argument("--out", metavar="DIR", help="output folder (default runs/compare-<name>)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted comparison")
    p.add_argument("--force", action="store_true", help="replace a comparison folder")
    p.add_argument("--seeds", type=_ints, help="override the seeds, e.g. 0,1,2")
    p.add_argument("--no-progress", action="store_true", help="no per-step progress bars")
    p.set_defaults(func=cmd_compare)


def _list_of(kind: type, name: str) -> Any:
    """An argparse type: comma-separated values of ``kind`` ("0,1,2")."""

    def parse(text: str) -> tuple:
        try:
            return tuple(kind(t) for t in text.split(",") if t.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {name}, got {text!r}"
            ) from None

    return parse


_ints = _list_of(int, "integers")
_floats = _list_of(float, "numbers")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmd_study(args: argparse.Namespace) -> int:
    from effnet.study import Study, quick
    from effnet.study.runner import run_study

    if args.config and args.quick:
        raise EffnetError("give a study config or --quick, not both")
    study = Study.load(args.config) if args.config else quick() if args.quick else None
    joins = (args.worker or args.report) and args.out
    if study is None and not (args.resume and args.out) and not joins:
        raise EffnetError("give a study config file, --quick, or --resume --out DIR")
    if study is not None:
        study = study.with_training(args.seeds, args.epochs, args.subset, args.epoch_multiples)
        safe_name(study.name, "study name")
    out = Path(args.out or f"runs/study-{study.name if study else 'quick'}")
    if args.storage or args.worker or args.report or args.processes is not None:
        return _distributed(study, out, args)
    if args.resume and study is not None and (out / "study.json").is_file() and not args.config:
        study = None  # --quick --resume: continue whatever the folder holds
    result = run_study(
        study, out, resume=args.resume, force=args.force, progress=not args.no_progress, log=_log
    )
    print(f"report: {result.folder / 'report.md'} (results.csv and plots beside it)")
    return 0


def _distributed(study: Any, out: Path, args: argparse.Namespace) -> int:
    """``effnet study`` with workers sharing an Optuna storage (effnet.study.study_workers)."""
    import optuna

    from effnet.study.study_workers import run_workers

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.processes is not None and args.processes < 1:
        raise EffnetError(f"--processes must be >= 1, got {args.processes}")
    if args.force:
        raise EffnetError("--force cannot be used with workers; give another --out")
    rows, complete = run_workers(
        study, out, args.storage, processes=args.processes or 1, report_only=args.report, log=_log
    )
    print(f"report: {out / 'report.md'} ({len(rows)} runs; "
          f"{'complete' if complete else 'not complete yet'})")  # fmt: skip
    return 0 if complete or args.report else 1


def cmd_search(args: argparse.Namespace) -> int:
    import optuna

    from effnet.study.coefficients import SearchConfig, quick_search
    from effnet.study.search import run_search

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.processes < 1:
        raise EffnetError(f"--processes must be >= 1, got {args.processes}")
    if args.join and args.force:
        raise EffnetError("--force replaces a search folder; it cannot be used with --join")
    cfg: SearchConfig | None = None
    if not args.join:
        if args.config:
            cfg = SearchConfig.load(args.config)
        else:
            cfg = quick_search() if args.quick else SearchConfig()
        cfg = _search_overrides(cfg, args)
    name = args.name or (cfg.name if cfg else None)
    out = Path(args.out or f"runs/search-{safe_name(name or 'coefficients', 'search name')}")
    result = run_search(
        cfg,
        out,
        storage=args.storage,
        name=name,
        processes=args.processes,
        log=_log,
        force=args.force,
    )
    if result.best:
        b = result.best
        print(
            f"best: alpha={b['alpha']:g} beta={b['beta']:g} gamma={b['gamma']:g} "
            f"(minival top-1 {b['minival_top1']:.2f}%); "
            f"paper: {', '.join(map(str, PAPER_COEFFICIENTS))}"
        )
    print(f"table: {out / 'grid.md'}")
    return 0 if result.complete else 1


def _search_overrides(cfg: Any, args: argparse.Namespace) -> Any:
    import dataclasses

    changes: dict[str, Any] = {}
    for key in ("phi", "step", "tolerance", "baseline", "resolution"):
        if getattr(args, key) is not None:
            changes[key] = getattr(args, key)
    if args.epochs is not None:
        changes["recipe_overrides"] = {**cfg.recipe_overrides, "epochs": args.epochs}
    if args.subset is not None:
        changes["data"] = {**cfg.data, "subset": args.subset}
    if args.no_prune:
        changes["prune"] = False
    return dataclasses.replace(cfg, **changes) if changes else cfg


def cmd_compare(args: argparse.Namespace) -> int:
    from effnet.study.compare import BaselineComparison, run_comparison, with_seeds

    if args.config is None and not (args.resume and args.out):
        raise EffnetError("give a comparison config file, or --resume --out DIR")
    cfg = BaselineComparison.load(args.config) if args.config else None
    if cfg is not None:
        cfg = with_seeds(cfg, args.seeds)
    out = Path(args.out or f"runs/compare-{cfg.name if cfg else 'baselines'}")
    result = run_comparison(
        cfg, out, resume=args.resume, force=args.force, progress=not args.no_progress, log=_log
    )
    print(f"report: {result.folder / 'report.md'} ({result.wall_time_s:.0f} s)")
    return 0
