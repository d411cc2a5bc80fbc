"""INT8 against fp32 in ONNX Runtime: top-1 on the Fashion-MNIST test set, and latency.

    EFFNET_FASHION_MNIST_DIR=/usr/share/datasets/fashion-mnist \\
        python benchmarks/bench_quantize.py runs/fm [--images 500] [--threads 1] [--b0]

MODEL_DIR is a Fashion-MNIST training run (or its ``model/``). The model is quantized with
``effnet.quantize.quantize`` (choices measured on 1,000 held-out training images, as the
CLI does), then both files are scored on the 10k test images with the model's eval
transform and timed in this one process: warm-up, then rounds interleaved with the order
alternating, 20 ms idle before each call, ORT's threads not spinning, median per path,
intra-op threads as given. ``--b0`` also times a full-size B0
at 224 (random weights whose BN statistics are set by two train-mode passes, as
bench_inference.py does; INT8 calibrated on 32 random images with the method and op types
chosen for MODEL_DIR, no layer in fp32): a latency check only, its accuracy means nothing.
Results go to benchmarks/results/quantize.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

import effnet
from effnet.cli.quantize import model_folder, report_lines
from effnet.export import export_onnx
from effnet.infer import onnx_session
from effnet.machine import machine_info
from effnet.qdq import VNNI_FLAGS, cpu_flags, onnx_logits
from effnet.quantize import Images, quantize, read_images

HERE = Path(__file__).resolve().parent


def latency(paths: dict[str, str], x: np.ndarray, threads: int, rounds: int) -> dict:
    # not spinning, and 20 ms idle before each call: two sessions with spinning threads in
    # one process slow each other (see bench_inference.py)
    sessions = {k: onnx_session(p, threads, spinning=False) for k, p in paths.items()}
    for s in sessions.values():  # warm-up: arenas, kernel selection
        for _ in range(3):
            s.run(None, {"input": x})
    times: dict[str, list[float]] = {k: [] for k in sessions}
    names = list(sessions)
    for r in range(rounds):
        for k in names if r % 2 else names[::-1]:
            time.sleep(0.02)
            t = time.perf_counter()
            sessions[k].run(None, {"input": x})
            times[k].append(time.perf_counter() - t)
    med = {k: 1000 * statistics.median(v) for k, v in times.items()}
    return {
        "batch": int(x.shape[0]),
        "threads": threads,
        "rounds": rounds,
        "median_ms": med,
        "int8_over_fp32": med["int8"] / med["fp32"],
        "speedup": med["fp32"] / med["int8"],
    }


def b0_latency(method: str, ops: str, threads: int, rounds: int) -> list[dict]:
    torch.manual_seed(0)
    model = effnet.create_model("efficientnet_b0")
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(8, 3, 224, 224))
    model.eval()
    calib = Images(torch.randn(32, 3, 224, 224), None, "random")
    check = Images(torch.randn(4, 3, 224, 224), None, "random")
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "b0.onnx"
        export_onnx(model, fp32, dynamic_batch=True, validate=False)
        int8 = Path(tmp) / "b0.int8.onnx"
        quantize(model, calib, check, int8, method=method, ops=ops, keep_fp32=0)
        paths = {"fp32": str(fp32), "int8": str(int8)}
        return [
            latency(paths, np.random.randn(b, 3, 224, 224).astype(np.float32), threads, rounds)
            for b in (1, 16)
        ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", metavar="MODEL_DIR")
    ap.add_argument("--images", type=int, default=500, help="calibration images")
    ap.add_argument("--check-images", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--b0", action="store_true", help="also time B0 at 224 (2 threads)")
    ap.add_argument("--out", default=str(HERE / "results" / "quantize.json"))
    args = ap.parse_args()
    logging.disable(logging.WARNING)  # ORT's quantizer warns about pre-processing it had
    torch.set_num_threads(args.threads)
    model = effnet.from_pretrained(model_folder(args.model))
    t0 = time.perf_counter()
    calib = read_images(model, "fashion-mnist", args.images)
    check = read_images(model, "fashion-mnist", args.check_images, skip=args.images)
    test = read_images(model, "fashion-mnist", 10_000, split="test")
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        export_onnx(model, fp32, dynamic_batch=True, validate=False)
        t1 = time.perf_counter()
        report = quantize(model, calib, check, int8)
        quantize_s = time.perf_counter() - t1
        print("\n".join(report_lines(report)), file=sys.stderr)
        # the same choices with the other weight range: what 7-bit weights cost or save here
        other = Path(tmp) / "int8.other-range.onnx"
        quantize(model, calib, check, other, method=report.method, ops=report.ops,
                 keep_fp32=len(report.kept_fp32), reduce_range=not report.reduce_range)  # fmt: skip
        logits = {"fp32": onnx_logits(fp32, test.tensor), "int8": onnx_logits(int8, test.tensor)}
        other_top1 = float(
            (onnx_logits(other, test.tensor).argmax(1) == test.labels.numpy()).mean()
        )
        top1 = {
            k: float((v.argmax(1) == test.labels.numpy()).mean() * 100) for k, v in logits.items()
        }
        with torch.inference_mode():
            eager = model(test.tensor[:2000]).numpy()
        agreement = float((logits["int8"].argmax(1) == logits["fp32"].argmax(1)).mean())
        paths = {"fp32": str(fp32), "int8": str(int8)}
        timing = [
            latency(paths, test.tensor[:b].numpy(), args.threads, args.rounds) for b in (1, 16)
        ]
    flags = cpu_flags() or set()
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": {
            **machine_info(args.threads),
            "platform": platform.platform(),
            "vnni": bool(flags & set(VNNI_FLAGS)),
        },
        "model": str(args.model),
        "arch": model.arch.name,
        "test_images": len(test.tensor),
        "top1": top1,
        "drop_points": top1["fp32"] - top1["int8"],
        "agreement_int8_fp32": agreement,
        "reduce_range": report.reduce_range,
        "top1_int8_other_reduce_range": 100 * other_top1,
        "fp32_onnx_vs_eager_max_abs": float(np.abs(logits["fp32"][:2000] - eager).max()),
        "quantize_s": quantize_s,
        "total_s": time.perf_counter() - t0,
        "latency": timing,
        "report": asdict(report),
    }
    if args.b0:
        result["b0_224_latency"] = b0_latency(report.method, report.ops, 2, args.rounds // 2)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "report"}, indent=2))


if __name__ == "__main__":
    main()
