"""effnet export | predict | cam: deploy a model, classify images, show where it looks."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from effnet.cli._common import add_scaling_args, positive_int, refuse_overwrite, scaling_overrides
from effnet.errors import EffnetError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model (BN folded) to ONNX, checked in ORT")
    _model_args(p)
    p.add_argument("--format", choices=["onnx"], default="onnx", help="output format")
    p.add_argument("--out", metavar="FILE", help="output file (default: MODEL.onnx)")
    p.add_argument("--dynamic-batch", action="store_true", help="any batch size at run time")
    p.add_argument(
        "--dynamic",
        action="store_true",
        help="any batch and H x W at run time (same padding computed in the graph); "
        "checked in ORT at three sizes",
    )
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--no-validate", action="store_true", help="skip the ONNX Runtime check")
    p.add_argument("--force", action="store_true", help="overwrite FILE")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("predict", help="top-k classes of images (the model's preprocessing)")
    _model_args(p, onnx=True)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, folders or globs")
    p.add_argument("--top-k", type=positive_int, default=5, help="classes to show per image (5)")
    p.add_argument("--out", metavar="FILE", help="also write the predictions (.csv or .json)")
    p.add_argument("--force", action="store_true", help="overwrite the --out FILE")
    p.add_argument("--classes", metavar="FILE", help="class names, one per line")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--backend",
        choices=["auto", "onnxruntime", "torch", "eager"],
        default="auto",
        help="auto: ONNX Runtime if installed, else optimised PyTorch",
    )
    p.add_argument("--threads", type=positive_int, help="intra-op threads (default: torch's)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="images per forward pass")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "validate", help="top-1/top-5 on an ImageNet-style folder (timm's validate.py)"
    )
    _model_args(p)
    p.add_argument(
        "folder", metavar="FOLDER", help="ROOT/CLASS/IMAGE (class: WordNet id or one per class)"
    )
    p.add_argument("--batch-size", type=positive_int, default=32, help="images per forward (32)")
    p.add_argument("--limit", type=positive_int, help="only the first N images")
    p.add_argument("--crop-pct", type=float, help="override the weights' crop fraction")
    p.add_argument("--json", metavar="FILE", help="write the result with every prediction")
    p.add_argument("--force", action="store_true", help="overwrite the --json FILE")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("cam", help="class activation maps overlaid on images (paper Fig. 7)")
    _model_args(p)
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the PNGs")
    p.add_argument("--class", dest="class_index", type=int, help="class to explain (default: top)")
    p.add_argument(
        "--models",
        nargs="+",
        metavar="M",
        help="more models (names or saved dirs) shown beside MODEL_OR_DIR, one figure per image",
    )
    p.add_argument("--classes", metavar="FILE", help="class names, one per line")
    p.add_argument("--opacity", type=float, default=0.5, help="heat-map opacity (0.5)")
    p.add_argument("--force", action="store_true", help="overwrite existing PNGs")
    p.set_defaults(func=cmd_cam)


def _model_args(p: argparse.ArgumentParser, onnx: bool = False) -> None:
    what = "a model name, architecture .json, or saved model directory"
    p.add_argument("model", metavar="MODEL_OR_DIR", help=what + (" or .onnx file" if onnx else ""))
    p.add_argument("--weights", metavar="PATH", help="weights file/dir (timm, torchvision, ours)")
    p.add_argument("--num-classes", type=positive_int, help="classifier outputs (default 1000)")
    p.add_argument("--in-chans", type=positive_int, help="input channels (default 3)")
    add_scaling_args(p)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in scaling_overrides(args).items() if v is not None}


def _load(
    args: argparse.Namespace,
    name: str | None = None,
    weights: str | None = None,
    size_is_export: bool = False,
) -> Any:
    """MODEL_OR_DIR with its options; another model (``name``, from --models) as it is.

    For export of a saved directory, --image-size is the export size, not a new resolution.
    """
    from effnet.infer import load_model

    if name is not None:
        return load_model(name, num_classes=args.num_classes, in_chans=args.in_chans)
    overrides = _overrides(args)
    if size_is_export and Path(args.model).is_dir():
        overrides.pop("resolution", None)
    return load_model(
        args.model,
        weights=weights,
        num_classes=args.num_classes,
        in_chans=args.in_chans,
        **overrides,
    )


def _label(model_arg: str) -> str:
    p = Path(model_arg)
    return p.name if p.is_dir() else p.stem if p.suffix == ".json" else model_arg


def cmd_export(args: argparse.Namespace) -> int:
    from effnet.export import export_onnx

    out = refuse_overwrite(args.out or f"{_label(args.model)}.onnx", args.force)
    model = _load(args, weights=args.weights, size_is_export=True)
    result = export_onnx(
        model,
        out,
        image_size=args.image_size,
        dynamic_batch=args.dynamic_batch,
        dynamic_size=args.dynamic,
        opset=args.opset,
        validate=not args.no_validate,
    )
    size = out.stat().st_size / 2**20
    pixels = "any HxW" if result.dynamic_size else f"{result.image_size}px"
    print(
        f"wrote {out} ({size:.1f} MiB, opset {result.opset}, {pixels}, "
        f"batch {'dynamic' if result.dynamic_batch else 1}, batch norm folded)"
    )
    for shape, diff in result.checks if result.dynamic_size else ():
        print(
            f"ONNX Runtime vs PyTorch at {'x'.join(map(str, shape))}: max abs difference {diff:.3g}"
        )
    if result.max_abs_diff is not None:
        print(f"ONNX Runtime vs PyTorch: max abs difference {result.max_abs_diff:.3g}")
    return 0


def _runner(args: argparse.Namespace) -> Any:
    from effnet.infer import Runner, class_names_for, read_class_names

    if args.model.endswith(".onnx"):
        runner = Runner.from_onnx(args.model, threads=args.threads)
        if args.classes:
            runner.class_names = read_class_names(args.classes)
        if runner.arch is None:
            raise EffnetError(f"{args.model} carries no effnet architecture metadata")
        return runner
    model = _load(args, weights=args.weights)
    names = class_names_for(model, args.classes)
    return Runner(model, backend=args.backend, threads=args.threads, class_names=names)


def _report_failures(failed: Any, any_read: bool) -> None:
    """One stderr line per unreadable image; when none could be read, one error line."""
    if not any_read:
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        first = failed[0][1] if failed else "no images given"
        raise EffnetError(f"no image could be read: {first}{more}")
    for _path, message in failed:
        print(f"effnet: skipped {message}", file=sys.stderr)


def cmd_validate(args: argparse.Namespace) -> int:
    import dataclasses

    from rich.progress import Progress

    from effnet.images import Preprocess
    from effnet.io import atomic_write_text
    from effnet.validate import validate

    out = refuse_overwrite(args.json, args.force) if args.json else None
    from effnet.pretrained import split_name

    bare = not Path(args.model).exists() and split_name(args.model)[1] is None
    random = bare and args.weights is None and not args.model.startswith("hf-hub:")
    model = _load(args, weights=args.weights)
    pre = Preprocess.of(model)
    if args.crop_pct is not None:
        pre = dataclasses.replace(pre, crop_pct=args.crop_pct)
    with Progress(transient=True) as bar:
        task = bar.add_task("validate", total=None)
        result = validate(model, args.folder, pre, args.batch_size, args.limit,
                          progress=lambda done, total: bar.update(task, completed=done,
                                                                  total=total))  # fmt: skip
    p = result["preprocessing"]
    print(
        f"{_label(args.model)} on {args.folder}: {result['images']} images, top-1 "
        f"{result['top1']:.3f}%  top-5 {result['top5']:.3f}%  (resize {p['resize_to']} "
        f"{p['interpolation']}, crop {p['size']}, labels by {result['labels']}, "
        f"{result['seconds']:.1f} s)"
    )
    if result["failed"]:
        print(f"{len(result['failed'])} unreadable image(s) skipped", file=sys.stderr)
    if random:
        print(f"effnet: note: {args.model} had random weights: give NAME.TAG (published "
              "weights) or --weights FILE", file=sys.stderr)  # fmt: skip
    if out:
        atomic_write_text(out, json.dumps(result, indent=1) + "\n")
        print(f"wrote {out}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Images (files, folders, globs) in; each image's top-k printed as soon as its batch
    is done, with progress on a terminal; ``--out`` also writes them as CSV or JSON."""
    from effnet.infer import image_paths, iter_predictions

    if args.top_k < 1:
        raise EffnetError(f"--top-k must be >= 1, got {args.top_k}")
    if args.batch_size < 1:
        raise EffnetError(f"--batch-size must be >= 1, got {args.batch_size}")
    out = refuse_overwrite(args.out, args.force) if args.out else None
    if out is not None and out.suffix.lower() not in (".csv", ".json"):
        raise EffnetError(f"--out {out}: give a .csv or .json file")
    paths = image_paths(args.images)
    runner = _runner(args)
    results, failed = [], []
    stream = iter_predictions(runner, paths, args.top_k, args.batch_size)
    for path, guesses, why in _with_progress(stream, len(paths)):
        if why is not None:
            failed.append((path, why))
            if results:  # before the first readable image, held: none may be readable
                print(f"effnet: skipped {why}", file=sys.stderr, flush=True)
            continue
        if not results:
            for _, held in failed:
                print(f"effnet: skipped {held}", file=sys.stderr, flush=True)
        results.append((path, guesses))
        if not args.json:
            lines = [path] + [f"  {g.probability:7.4f}  {g.label}"
                              + (f"  ({g.index})" if g.label != str(g.index) else "")
                              for g in guesses]  # fmt: skip
            print("\n".join(lines), flush=True)
    if not results:
        _report_failures(failed, False)
    doc = {"predictions": [{"image": p, "top_k": [g.__dict__ for g in gs]} for p, gs in results],
           "errors": [{"image": p, "error": m} for p, m in failed]}  # fmt: skip
    if args.json:
        print(json.dumps(doc, indent=2))
    if out is not None:
        _write_predictions(out, doc)
        print(f"wrote {out} ({len(results)} images)", file=sys.stderr)
    return 0


def _with_progress(items: Any, total: int) -> Any:
    """``items`` as they come, with a progress bar on stderr when it is a terminal."""
    if not sys.stderr.isatty():
        yield from items
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True, redirect_stdout=False,
                  redirect_stderr=False) as bar:  # fmt: skip
        task = bar.add_task("predict", total=total)
        for item in items:
            bar.advance(task)
            yield item


def _write_predictions(out: Path, doc: dict[str, Any]) -> None:
    import csv
    import io

    from effnet.io import atomic_write_text

    if out.suffix.lower() == ".json":
        atomic_write_text(out, json.dumps(doc, indent=2) + "\n")
        return
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["image", "rank", "index", "label", "probability"])
    for row in doc["predictions"]:
        for rank, g in enumerate(row["top_k"], 1):
            w.writerow([row["image"], rank, g["index"], g["label"], f"{g['probability']:.6f}"])
    atomic_write_text(out, buf.getvalue())


def cmd_cam(args: argparse.Namespace) -> int:
    from effnet.cam import cam_panels, comparison_figure, output_stems, save_png
    from effnet.images import Preprocess, load_batch
    from effnet.infer import class_names_for

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise EffnetError(f"--out {out} is a file, not a folder")
    if not 0.0 <= args.opacity <= 1.0:
        raise EffnetError(f"--opacity must be in [0, 1], got {args.opacity}")
    specs = [args.model] + list(args.models or [])
    models = [_load(args, weights=args.weights)] + [_load(args, m) for m in specs[1:]]
    names = class_names_for(models[0], args.classes)
    suffix = "_cam_models.png" if args.models else "_cam.png"
    # read the first model's way to find which images are readable, then name the outputs
    first = load_batch(args.images, Preprocess.of(models[0]))
    _report_failures(first.failed, bool(first.paths))
    targets = [out / f"{s}{suffix}" for s in output_stems(list(first.paths))]
    for t in targets:
        refuse_overwrite(t, args.force)
    titled = [(_label(spec), m) for spec, m in zip(specs, models)]
    panels = cam_panels(titled, first, names, args.class_index, args.opacity)
    for i, target in enumerate(targets):
        if args.models:
            comparison_figure(first.crops[i], panels[i], target, title=Path(first.paths[i]).name)
        else:
            save_png(panels[i][0][1], target)
        print(f"wrote {target}")
    return 0
