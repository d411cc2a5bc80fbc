"""Best Fashion-MNIST test accuracy of a phi-scaled EfficientNet within a training time budget.

    .venv/bin/python benchmarks/bench_fashion_mnist.py --minutes 15
    .venv/bin/python benchmarks/bench_fashion_mnist.py --minutes 60

Picks the thread count (1 or 2; on a shared, oversubscribed CPU one thread can be much
faster) and the largest phi (width/depth by compound scaling, resolution fixed by --res)
whose measured step time fits ``--min-epochs`` into the budget, trains with the "cpu"
recipe on the 55k training images (5k held out as minival), keeps the checkpoint with the
best minival top-1 and reports its test top-1. Writes benchmarks/results/fashion_mnist_<N>min.json.

The budget is the whole process, from its start (imports, probes, data loading, training,
checkpoint selection, the test pass and test-time flip): training gets what is left after
the probes minus ``RESERVE_S`` for the work after it, and the result says whether the
process finished within the budget.
"""

import argparse
import dataclasses
import json
import math
import os
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from effnet.data import DataSpec
from effnet.machine import machine_info
from effnet.model import build
from effnet.registry import get_arch
from effnet.train import RECIPES, train
from effnet.train.evaluation import evaluate_run
from effnet.train.recipe import apply_overrides

RESULTS = Path(__file__).parent / "results"
RESERVE_S = 60.0  # after training: data loading, selection, test pass, flip (measured 42-47 s)


def process_start() -> float:
    """Wall-clock time this process started (Linux /proc; else now, at first call)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


START = process_start()


def architecture(phi, res, stem_stride):
    """B0 scaled by phi at ``res`` px; ``stem_stride`` 1 keeps the stem at full size (for
    28 px images: maps of 28, 14, 7, 4, 2, 1 instead of 16, 8, 4, 2, 1, 1 at 32 px)."""
    arch = get_arch("efficientnet_b0", phi=phi, resolution=res)
    if stem_stride != arch.stem.stride:
        arch = arch.replace(stem=dataclasses.replace(arch.stem, stride=stem_stride))
        arch = arch.replace(name=f"{arch.name}-stem{stem_stride}")
    return arch


def step_time(phi, res, batch, threads, stem_stride=2, steps=4):
    torch.set_num_threads(threads)
    model = build(architecture(phi, res, stem_stride), num_classes=10, in_chans=1)
    model = model.to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(model.parameters())
    x = torch.randn(batch, 1, res, res).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return sorted(times[1:])[len(times[1:]) // 2]


def flip_tta(run_dir):
    """Minival top-1 with and without test-time flip (``effnet eval --tta flip``); the
    test top-1 with flip only when minival says it helps (decided on minival, never test)."""
    out = {"minival_top1": evaluate_run(run_dir, split="minival")["top1"]}
    out["minival_top1_flip_tta"] = evaluate_run(run_dir, split="minival", tta="flip")["top1"]
    out["flip_tta_helps_on_minival"] = out["minival_top1_flip_tta"] > out["minival_top1"]
    if out["flip_tta_helps_on_minival"]:
        out["test_top1_flip_tta"] = evaluate_run(run_dir, split="test", tta="flip")["top1"]
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--minutes", type=float, default=15)
    p.add_argument("--res", type=int, default=32)
    p.add_argument("--stem-stride", type=int, default=2, help="1: a full-size stem (28 px)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--phis", default="-8,-6,-4,-2,0")
    p.add_argument("--min-epochs", type=float, default=None, help="default: max(2, minutes/6)")
    p.add_argument("--threads", type=int, default=None, help="default: the faster of 1 and 2")
    p.add_argument("--out", default=None)
    p.add_argument("--note", default="", help="free text saved with the result")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="recipe override, e.g. --set crop_padding=0.125 (repeatable)",
    )
    p.add_argument("--tag", default="", help="suffix of the result file name (ablations)")
    args = p.parse_args()
    budget = args.minutes * 60
    min_epochs = args.min_epochs or max(2.0, args.minutes / 3)
    phis = [float(x) for x in args.phis.split(",")]
    threads = args.threads
    if threads is None:
        t = {n: step_time(phis[0], args.res, args.batch, n, args.stem_stride) for n in (1, 2)}
        threads = min(t, key=t.get)
        print(f"threads: {t} -> {threads}", flush=True)
    torch.set_num_threads(threads)
    steps_per_epoch = 55_000 // args.batch
    eval_share = 0.1  # minival evaluations and the final test pass
    probes = {}
    chosen = phis[0]
    for phi in phis:
        probes[phi] = step_time(phi, args.res, args.batch, threads, args.stem_stride)
        epochs = budget * (1 - eval_share) / (probes[phi] * steps_per_epoch)
        print(f"phi {phi:+g}: {probes[phi]:.3f} s/step -> {epochs:.1f} epochs", flush=True)
        if epochs < min_epochs:
            break
        chosen = phi
    epochs = budget * (1 - eval_share) / (probes[chosen] * steps_per_epoch)
    epochs = max(0.5, math.floor(epochs * 10) / 10)
    # epochs is an upper bound: under max_time_s the cosine follows the elapsed share of the
    # budget, so a pessimistic probe (other jobs on the CPU) does not end the run early
    train_budget = budget - (time.time() - START) - RESERVE_S
    if train_budget <= 0:
        raise SystemExit(
            f"error: --minutes {args.minutes:g} leaves no training time after the probes "
            f"and the {RESERVE_S:.0f} s kept for evaluation"
        )
    recipe = RECIPES["cpu"].replace(
        epochs=epochs * 3,
        batch_size=args.batch,
        warmup_epochs=min(1.0, 0.15 * epochs),
        max_time_s=train_budget,
        log_every=50,
        checkpoint_every=500,
    )
    recipe = apply_overrides(recipe, args.set)
    arch = architecture(chosen, args.res, args.stem_stride)
    out = Path(args.out or f"/tmp/effnet-bench-fmnist-{int(args.minutes)}min{args.tag}")
    if out.exists():
        shutil.rmtree(out)
    print(
        f"training {arch.name} at {args.res}px, ~{epochs} epochs expected ({budget:.0f} s budget)"
    )
    load_before = [round(x, 2) for x in os.getloadavg()]
    t0 = time.time()
    result = train(arch, DataSpec(workers=0), recipe, out, progress=False)
    m = result.metrics
    try:
        tta = flip_tta(out)
    except Exception as e:  # the training result is kept even if this extra check fails
        tta = {"error": f"{type(e).__name__}: {e}"}
    process_wall_s = time.time() - START
    record = {
        "machine": machine_info(threads),
        "minutes": args.minutes,
        "threads": threads,
        "phi": chosen,
        "width": arch.width,
        "depth": arch.depth,
        "resolution": args.res,
        "stem_stride": args.stem_stride,
        "batch_size": args.batch,
        "step_time_probe_s": probes,
        "recipe": recipe.to_dict(),
        "wall_s": round(time.time() - t0, 1),
        "process_wall_s": round(process_wall_s, 1),
        "within_budget": process_wall_s <= budget,
        **m,
        "run_dir": str(out),
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "note": args.note,
        "test_time_flip": tta,
        "epoch_log": [
            json.loads(line)
            for line in (out / "metrics.jsonl").read_text().splitlines()
            if '"kind": "epoch"' in line
        ],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    tag = f"_{args.tag}" if args.tag else ""
    path = RESULTS / f"fashion_mnist_{int(args.minutes)}min{tag}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(
        json.dumps(
            {
                k: record[k]
                for k in (
                    "phi",
                    "epochs",
                    "minival_top1",
                    "test_top1",
                    "test_top5",
                    "train_time_s",
                    "process_wall_s",
                    "within_budget",
                )
            }
            | {"test_time_flip": tta},
            indent=2,
        )
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
