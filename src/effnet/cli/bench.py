"""effnet bench: latency and throughput of models on this machine (effnet.latency)."""

from __future__ import annotations

import argparse

from effnet.cli._common import positive_int, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="median latency and images/s of models on this machine (interleaved rounds)",
        description=(
            "Times each MODEL (name, architecture .json or saved model directory; random "
            "weights for names) after warm-up, in interleaved rounds, and prints the median "
            "and quartiles in ms, images/s, and the median's ratio to the first MODEL."
        ),
    )
    p.add_argument("models", nargs="+", metavar="MODEL")
    p.add_argument(
        "--backend",
        choices=["torch", "onnxruntime", "int8"],
        default="torch",
        help="torch (optimised PyTorch), onnxruntime (fp32 ONNX), int8 (ONNX Runtime on the "
        "model quantized to INT8 QDQ: effnet quantize with random calibration images)",
    )
    p.add_argument("--batch", type=positive_int, default=1, help="images per call (1)")
    p.add_argument("--threads", type=positive_int, help="intra-op threads (default: torch's)")
    p.add_argument("--rounds", type=positive_int, default=20, help="timed calls per model (20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls per model first (3)")
    p.add_argument("--image-size", type=positive_int, help="pixels (default: each model's)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from effnet.latency import compare

    rows = compare(
        args.models, backend=args.backend, batch=args.batch, threads=args.threads,
        rounds=args.rounds, warmup=args.warmup, image_size=args.image_size,
    )  # fmt: skip
    from effnet.machine import describe, machine_info

    first = rows[0].median_ms
    machine = machine_info(rows[0].threads)
    if args.json:
        table = [{**r.to_dict(), "ratio": r.median_ms / first} for r in rows]
        print_json({"machine": machine, "rows": table})
        return 0
    r0 = rows[0]
    print(f"machine: {describe(machine)}")
    print(
        f"{r0.backend}, batch {r0.batch}, {r0.threads} thread(s), {r0.rounds} rounds "
        f"interleaved; ratio = median / {r0.model}'s"
    )
    print("| model | px | median ms | p25-p75 ms | img/s | ratio |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r.model} | {r.image_size} | {r.median_ms:.2f} | {r.p25_ms:.2f}-{r.p75_ms:.2f} "
            f"| {r.images_per_s:.1f} | {r.median_ms / first:.2f}x |"
        )
    return 0
