"""Training throughput of our efficientnet_b0 vs timm's, interleaved in one process.

    /opt/effnet-reference/bin/python benchmarks/bench_train_throughput.py

Full-width B0, 32x32 inputs, batch 128, 2 threads, channels_last for both, one SGD step
(forward, backward, update) per measurement. Rounds alternate between the models so load
from other processes on the shared CPU hits all of them alike; the ratio of medians is
reported. Also ours under torch.compile. Writes benchmarks/results/train_throughput.json.
"""

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from effnet.hub import create_model

RESULTS = Path(__file__).parent / "results"


def make_step(model, batch, res, chans):
    model = model.to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, chans, res, res).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,))

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def timed(step):
    t0 = time.perf_counter()
    step()
    return time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--res", type=int, default=32)
    p.add_argument("--chans", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--bf16", action="store_true", help="also ours under bf16 autocast")
    p.add_argument("--out", default=str(RESULTS / "train_throughput.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    import timm

    steps = {
        "effnet": make_step(create_model("efficientnet_b0"), args.batch, args.res, args.chans),
        "timm": make_step(timm.create_model("efficientnet_b0"), args.batch, args.res, args.chans),
    }
    # timm's efficientnet_b0 defaults to drop_path_rate 0; ours to the paper's 0.2
    steps["effnet_drop_path0"] = make_step(
        create_model("efficientnet_b0", drop_path=0.0), args.batch, args.res, args.chans
    )
    notes = {}
    if not args.no_compile:
        compiled = torch.compile(create_model("efficientnet_b0"))
        steps["effnet_compiled"] = make_step(compiled, args.batch, args.res, args.chans)
        t0 = time.perf_counter()
        try:
            steps["effnet_compiled"]()
            notes["compile_s"] = round(time.perf_counter() - t0, 1)
        except Exception as e:  # report, don't hide: compile needs a working C++ toolchain
            notes["compile_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
            del steps["effnet_compiled"]
    if args.bf16:
        ours = make_step(create_model("efficientnet_b0"), args.batch, args.res, args.chans)

        def bf16():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                ours()

        steps["effnet_bf16"] = bf16
    for step in steps.values():  # warm-up
        step()
    times = {k: [] for k in steps}
    for _ in range(args.rounds):
        for k, step in steps.items():
            times[k].append(timed(step))
    med = {k: statistics.median(v) for k, v in times.items()}
    ips = {k: args.batch / v for k, v in med.items()}
    result = {
        "config": vars(args),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "cpu": platform.processor() or platform.machine(),
        "images_per_s": {k: round(v, 1) for k, v in ips.items()},
        "ratio_vs_timm": {k: round(v / ips["timm"], 3) for k, v in ips.items()},
        # the fastest round of each: less sensitive to other load than the median
        "ratio_vs_timm_best_round": {
            k: round(min(times["timm"]) / min(v), 3) for k, v in times.items()
        },
        "step_times_s": {k: [round(t, 4) for t in v] for k, v in times.items()},
        "notes": {
            **notes,
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "read": "ratios of interleaved rounds are the result; absolute times vary",
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    keys = ("images_per_s", "ratio_vs_timm", "ratio_vs_timm_best_round", "notes")
    print(json.dumps({k: result[k] for k in keys}, indent=2))


if __name__ == "__main__":
    main()
