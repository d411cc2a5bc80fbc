"""effnet train | eval."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from effnet.cli._common import (
    add_scaling_args,
    positive_int,
    refuse_overwrite,
    scaling_overrides,
)
from effnet.errors import EffnetError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model on Fashion-MNIST or an ImageFolder tree into a run folder",
        description="Train MODEL into a run folder; --resume RUN_DIR continues a stopped run "
        "exactly, with the run's saved model, data and recipe. With --resume only --epochs "
        "(the new total; a cosine schedule is recomputed for it from the current step, the "
        "step schedule continues unchanged), --max-time (the new total time limit, time spent "
        "included) and --workers may be given. Runs under torchrun for data parallelism (DDP).",
    )
    p.add_argument(
        "model",
        nargs="?",
        help="model name or architecture .json (not with --resume; optional with --init DIR)",
    )
    add_data_args(p, default=None)
    p.add_argument("--out", metavar="RUN_DIR", help="run folder to create (default runs/MODEL)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    p.add_argument(
        "--recipe",
        default="auto",
        help="paper | cpu | FILE.json (default auto: paper with a GPU, cpu without)",
    )
    r = p.add_argument_group("recipe overrides")
    r.add_argument("--epochs", type=float)
    r.add_argument("--batch-size", type=int, help="global batch (split over DDP processes)")
    r.add_argument("--lr", type=float, help="learning rate per 256 images")
    r.add_argument("--max-time", type=float, metavar="SECONDS", help="training time limit")
    r.add_argument("--seed", type=int)
    r.add_argument("--amp", choices=["bf16"], help="bf16 autocast (slow on AVX2-only CPUs)")
    r.add_argument("--compile", action="store_true", help="torch.compile the model")
    r.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm under DDP")
    r.add_argument("--deterministic", action="store_true", help="bit-exact, resumable runs")
    r.add_argument(
        "--threads",
        type=positive_int,
        help="intra-op threads (default: the cores other processes leave free, re-checked "
        "every 30 s; fixed under --deterministic)",
    )
    r.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any recipe field, e.g. --set label_smoothing=0.1 --set randaugment=[2,5]",
    )
    f = p.add_argument_group("fine-tuning")
    f.add_argument(
        "--init",
        metavar="MODEL_DIR_OR_CHECKPOINT",
        help="start from these weights with a new head for the data's classes, keeping the "
        "model's preprocessing: a saved model folder, a run folder (its model/), or a timm, "
        "torchvision or efficientnet_pytorch checkpoint (then name MODEL)",
    )
    f.add_argument(
        "--freeze-epochs", type=float, metavar="N", help="train only the new head for N epochs"
    )
    f.add_argument(
        "--backbone-lr-mult",
        type=float,
        metavar="F",
        help="backbone learning rate as a multiple of the head's",
    )
    f.add_argument(
        "--freeze-bn", action="store_true", help="batch norm statistics and affine frozen"
    )
    add_scaling_args(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train, train_options=_options(p))

    p = sub.add_parser("eval", help="top-1/top-5 and a confusion matrix of a run or model")
    p.add_argument("target", metavar="RUN_DIR_OR_MODEL")
    add_data_args(p, default=None)
    p.add_argument("--split", default="test", choices=["test", "minival", "train"])
    p.add_argument(
        "--tta", choices=["flip"], help="test-time augmentation: average with the mirror image"
    )
    p.add_argument("--png", metavar="FILE", help="confusion matrix image (default in RUN_DIR)")
    p.add_argument("--force", action="store_true", help="overwrite --png FILE")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_eval)


def add_data_args(p: argparse.ArgumentParser, default: str | None = "fashion-mnist") -> None:
    g = p.add_argument_group("data")
    g.add_argument(
        "--data", default=default, help="fashion-mnist (the default) or an ImageFolder root"
    )
    g.add_argument("--data-dir", help="folder with the Fashion-MNIST IDX files")
    g.add_argument("--download", action="store_true", help="download Fashion-MNIST if missing")
    g.add_argument("--minival", type=int, help="training images held out for model selection")
    g.add_argument("--subset", type=int, help="train on only this many images (quick runs)")
    g.add_argument("--decode-size", type=int, help="ImageFolder decode size in pixels")
    g.add_argument("--workers", type=int, help="data loader processes (default 2)")
    what = "keep an ImageFolder class folder that holds no image (else an error)"
    g.add_argument("--allow-empty-classes", action="store_true", help=what)


def data_spec(args: argparse.Namespace) -> object:
    from effnet.data import DataSpec

    fields = dict(
        source=args.data or "fashion-mnist",
        data_dir=args.data_dir,
        minival=args.minival,
        subset=args.subset,
        image_size=args.decode_size,
        workers=args.workers,
    )
    spec = DataSpec(**{k: v for k, v in fields.items() if v is not None})
    allow = bool(getattr(args, "allow_empty_classes", False))
    return dataclasses.replace(spec, download=args.download, allow_empty_classes=allow)


def recipe_from(args: argparse.Namespace) -> object:
    from effnet.train import apply_overrides, resolve

    recipe = resolve(args.recipe)
    flags = dict(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        max_time_s=args.max_time,
        amp=args.amp,
        freeze_epochs=args.freeze_epochs,
        backbone_lr_mult=args.backbone_lr_mult,
    )
    changes = {k: v for k, v in flags.items() if v is not None}
    for flag in ("compile", "sync_bn", "deterministic", "freeze_bn"):
        if getattr(args, flag):
            changes[flag] = True
    return apply_overrides(recipe.replace(**changes), args.set)


def cmd_train(args: argparse.Namespace) -> int:
    from effnet.train import train

    progress = not args.no_progress and sys.stderr.isatty()
    if args.resume:
        if args.model:
            raise EffnetError("give either MODEL or --resume RUN_DIR, not both")
        recipe, data = resume_changes(args)
        result = train(
            None, data, recipe, args.resume, resume=True, progress=progress, threads=args.threads
        )
    else:
        if not args.model and not args.init:
            raise EffnetError("which model? e.g. effnet train efficientnet_b0 --data fashion-mnist")
        out = args.out or default_out(args.model, args.init)
        result = train(
            args.model,
            data_spec(args),
            recipe_from(args),
            out,
            model_overrides=scaling_overrides(args),
            progress=progress,
            init=args.init,
            threads=args.threads,
        )
    m = result.metrics
    mini = f", minival {m['minival_top1']:.2f}%" if m["minival_top1"] is not None else ""
    chosen = f"{m['selected_by']}{mini}"
    print(
        f"{result.run_dir}: test top-1 {m['test_top1']:.2f}%  top-5 {m['test_top5']:.2f}%  "
        f"({chosen}, {m['epochs']:.1f} epochs, {m['train_time_s']:.0f} s)"
    )
    return 0


def default_out(model: str | None, init: str | None) -> str:
    """runs/MODEL, or runs/NAME-finetuned after the init (a run's model/ is named by its run)."""
    if model:
        return str(Path("runs") / Path(model).stem)
    p = Path(str(init)).expanduser().resolve()
    name = p.parent.name if p.name == "model" else p.stem
    return str(Path("runs") / f"{name}-finetuned")


ON_RESUME = ("resume", "epochs", "max_time", "workers", "threads", "no_progress")  # argparse dests


def _options(p: argparse.ArgumentParser) -> tuple[tuple[str, str, object], ...]:
    """(dest, flag, default) of every option of ``train``: what --resume checks."""
    return tuple(
        (a.dest, (a.option_strings or [a.dest.upper()])[-1], a.default)
        for a in p._actions
        if a.dest != "help"
    )


def resume_changes(args: argparse.Namespace) -> tuple[object, object]:
    """(recipe, data) for ``train(resume=True)``: the run's saved ones with --epochs,
    --max-time and --workers applied (None where unchanged); any other option is refused
    in one line, since the run continues with its saved settings."""
    from effnet.train.runfolder import saved_data, saved_recipe

    for dest, flag, default in args.train_options:
        if dest not in ON_RESUME and getattr(args, dest, default) != default:
            raise EffnetError(
                f"{flag} cannot be given with --resume: the run continues with its saved "
                "settings (only --epochs, --max-time and --workers may change)"
            )
    changes = {"epochs": args.epochs, "max_time_s": args.max_time}
    changes = {k: v for k, v in changes.items() if v is not None}
    recipe = saved_recipe(args.resume).replace(**changes) if changes else None
    data = None
    if args.workers is not None:
        data = dataclasses.replace(saved_data(args.resume), workers=args.workers)
    return recipe, data


def cmd_eval(args: argparse.Namespace) -> int:
    from effnet.train import runfolder
    from effnet.train.evaluation import evaluate_run, plot_confusion

    target = Path(args.target)
    is_run = runfolder.is_run(target)
    given = args.data or args.data_dir or args.subset is not None or args.minival is not None
    spec = data_spec(args) if given else None
    result = evaluate_run(args.target, spec, split=args.split, tta=args.tta)
    png = args.png or (str(target / f"confusion_{args.split}.png") if is_run else None)
    if args.png:
        refuse_overwrite(args.png, args.force)
    if png:
        plot_confusion(result["confusion"], result["class_names"], png)
    if args.json:
        print(json.dumps({k: v for k, v in result.items()}, indent=2))
        return 0
    print(
        f"{result['model']} on {args.split} ({result['images']} images"
        f"{', flip TTA' if args.tta else ''}): "
        f"top-1 {result['top1']:.2f}%  top-5 {result['top5']:.2f}%  loss {result['loss']:.4f}"
    )
    if png:
        print(f"confusion matrix: {png}")
    skipped = result.get("skipped") or []
    if skipped:  # as train lists them: a count here, each file on stderr
        print(f"{len(skipped)} unreadable file(s) skipped:", file=sys.stderr)
        for path in skipped:
            print(f"  {path}", file=sys.stderr)
    return 0
