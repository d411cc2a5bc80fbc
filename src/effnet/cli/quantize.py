"""``effnet quantize``: static INT8 ONNX calibrated on the user's images, choices measured."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from effnet.cli._common import refuse_overwrite
from effnet.errors import EffnetError

if TYPE_CHECKING:
    from effnet.quantize import QuantReport, Score


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quantize",
        help="static INT8 ONNX (QDQ, per-channel) calibrated on your images",
        description=(
            "Exports MODEL_DIR (BN folded), calibrates on --images images of DATA read with "
            "the model's own preprocessing, and writes an INT8 QDQ model. The calibration "
            "method, the quantized op types and the layers left in fp32 (per-layer "
            "sensitivity sweep) are chosen by their top-1 agreement with the fp32 model on "
            "--check-images further images; every measurement is printed."
        ),
    )
    p.add_argument("model", metavar="MODEL_DIR", help="saved model folder or training run folder")
    p.add_argument(
        "--calib",
        required=True,
        metavar="DATA",
        help="fashion-mnist, an ImageFolder root (train/ split), or a folder of images",
    )
    p.add_argument("--images", type=int, default=500, help="calibration images (500)")
    p.add_argument(
        "--check-images", type=int, default=1000, help="held-out images scoring choices (1000)"
    )
    p.add_argument("--out", required=True, metavar="FILE.onnx", help="the INT8 model")
    p.add_argument("--method", choices=["auto", "minmax", "entropy", "percentile"], default="auto")
    p.add_argument("--ops", choices=["auto", "all", "conv"], default="auto")
    p.add_argument("--keep-fp32", type=int, help="leave the K most sensitive layers in fp32")
    p.add_argument(
        "--target-agreement",
        type=float,
        default=0.99,
        help="fewest fp32 layers reaching this top-1 agreement with fp32 (0.99)",
    )
    p.add_argument(
        "--reduce-range",
        choices=["auto", "on", "off"],
        default="auto",
        help="7-bit weights; auto: on for x86 CPUs without VNNI (ORT's advice)",
    )
    p.add_argument("--report", metavar="FILE.json", help="write every measurement as JSON")
    p.add_argument("--force", action="store_true", help="overwrite FILE.onnx")
    p.set_defaults(func=cmd_quantize)


def model_folder(path: str) -> Path:
    """A saved model folder: MODEL_DIR itself, or the ``model/`` of a training run."""
    folder = Path(path)
    if (folder / "model" / "config.json").is_file():
        folder = folder / "model"
    if not (folder / "config.json").is_file():
        raise EffnetError(f"{folder}: not a saved model folder (no config.json)")
    if not (folder / "model.safetensors").is_file():
        raise EffnetError(f"{folder}: no weights (model.safetensors missing)")
    return folder


def report_lines(report: QuantReport, worst: int = 8) -> list[str]:
    """Each step's candidates, the chosen one marked with '*'."""

    def row(label: str, s: Score, chosen: bool) -> str:
        top1 = "" if s.top1 is None else f"  top-1 {s.top1:6.2f}%"
        ms = "" if s.ms is None else f"  {s.ms:8.2f} ms"
        mark = "*" if chosen else " "
        return (
            f"  {mark} {label:<11} agreement {s.agreement:7.2%}{top1}  rel. MSE {s.rel_mse:.2e}{ms}"
        )

    out = [f"{report.check_images} check images (latency: batch of 16, one thread)"]
    out.append(row("fp32", report.fp32, False))
    out.append("calibration method (every op type quantized):")
    out += [row(m, s, m == report.method) for m, s in report.methods.items()]
    out += [f"    {m:<11} failed: {why}" for m, why in report.failed_methods.items()]
    out.append(f"quantized op types ({report.method} calibration):")
    out += [row(o, s, o == report.ops) for o, s in report.op_choices.items()]
    if report.sensitivity:
        out.append(f"most sensitive of {len(report.sensitivity)} layers, each quantized alone:")
        out += [f"    {err:.2e}  {name}" for name, err in report.sensitivity[:worst]]
    out.append("most sensitive layers kept in fp32:")
    k = len(report.kept_fp32)
    out += [row(f"{n} kept", s, n == k) for n, s in report.keep_sweep.items()]
    return out


def cmd_quantize(args: argparse.Namespace) -> int:
    from effnet.io import atomic_write_text
    from effnet.quantize import quantize, read_images
    from effnet.weights import from_pretrained

    out = refuse_overwrite(args.out, args.force)
    if not 0.0 < args.target_agreement <= 1.0:
        raise EffnetError(f"--target-agreement must be in (0, 1], got {args.target_agreement}")
    if args.check_images < 1:
        raise EffnetError(f"--check-images must be >= 1, got {args.check_images}")
    model = from_pretrained(model_folder(args.model))
    calib = read_images(model, args.calib, args.images)
    check = read_images(model, args.calib, args.check_images, skip=args.images)
    report = quantize(
        model,
        calib,
        check,
        out,
        method=None if args.method == "auto" else args.method,
        ops=None if args.ops == "auto" else args.ops,
        keep_fp32=args.keep_fp32,
        target_agreement=args.target_agreement,
        reduce_range={"auto": None, "on": True, "off": False}[args.reduce_range],
    )
    print("\n".join(report_lines(report)))
    kept = len(report.kept_fp32)
    print(
        f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB, INT8 QDQ, {report.method} "
        f"calibration on {report.calib_images} images, {report.ops} ops, {kept} layers fp32"
        f"{', 7-bit weights' if report.reduce_range else ''})"
    )
    if args.report:
        atomic_write_text(args.report, report.to_json() + "\n")
    return 0
