"""Training throughput of our efficientnet_b0 vs timm's, interleaved in one process.

    /opt/effnet-reference/bin/python benchmarks/bench_train_throughput.py

Full-width B0 (3 channels, 1000 classes), channels_last for both, one SGD step (forward,
backward, update) per measurement, at 32x32 batch 128 and 64x64 batch 64, 2 threads.
Rounds alternate between the models so load from other processes hits all of them alike;
the ratio of medians is the result. For each size it also reports:

- the multiply-adds per second achieved (3x the forward multiply-adds per image: forward,
  input gradient, weight gradient) against the 78 G/s fp32 peak of this 2-core AVX2 CPU;
- that the two models compute the same thing: timm's weights loaded into ours, the max abs
  logit difference in eval and in train mode;
- ``--load``: the same rounds beside one CPU-bound process at ``nice 19``: timm and ours at
  2 threads (PyTorch's default), and ours with the thread count training picks
  (:class:`effnet.threads.ThreadGovernor`), each as a ratio to its quiet speed.

Writes benchmarks/results/train_throughput.json.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from effnet.hub import create_model
from effnet.profile import arch_macs
from effnet.registry import get_arch
from effnet.threads import ThreadGovernor
from effnet.weights import load_timm

RESULTS = Path(__file__).parent / "results"
PEAK_MACS = 78e9  # fp32 multiply-adds/s of this CPU on 2 threads (measured GEMM peak)


def make_step(model, batch, res, threads):
    model = model.to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, res, res).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,))

    def step():
        torch.set_num_threads(threads() if callable(threads) else threads)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def same_outputs(timm_model, res):
    """Max abs logit difference with timm's weights in ours (eval and train-mode forward)."""
    ours = create_model("efficientnet_b0", drop_path=0.0)
    load_timm(ours, timm_model.state_dict())
    x = torch.randn(8, 3, res, res).contiguous(memory_format=torch.channels_last)
    out = {}
    for mode in ("eval", "train"):
        a, b = ours.train(mode == "train"), timm_model.train(mode == "train")
        a, b = a.to(memory_format=torch.channels_last), b.to(memory_format=torch.channels_last)
        with torch.no_grad():
            out[mode] = (a(x) - b(x)).abs().max().item()
    return out


def rounds(steps, n):
    for step in steps.values():  # warm-up
        step()
    times = {k: [] for k in steps}
    for _ in range(n):
        for k, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[k].append(time.perf_counter() - t0)
    return times


def measure(res, batch, threads, n, load):
    import timm

    torch.manual_seed(0)
    timm_model = timm.create_model("efficientnet_b0")
    agree = same_outputs(timm_model, res)
    ours = create_model("efficientnet_b0", drop_path=0.0)  # timm's default drop path is 0
    steps = {
        "effnet": make_step(ours, batch, res, threads),
        "timm": make_step(timm_model, batch, res, threads),
    }
    times = rounds(steps, n)
    med = {k: statistics.median(v) for k, v in times.items()}
    macs = 3 * arch_macs(get_arch("efficientnet_b0", resolution=res))
    ips = {k: batch / v for k, v in med.items()}
    result = {
        "resolution": res,
        "batch": batch,
        "threads": threads,
        "images_per_s": {k: round(v, 1) for k, v in ips.items()},
        "ratio_vs_timm": round(ips["effnet"] / ips["timm"], 3),
        "ratio_vs_timm_best_round": round(min(times["timm"]) / min(times["effnet"]), 3),
        "train_macs_per_image": macs,
        "g_macs_per_s": {k: round(v * macs / 1e9, 2) for k, v in ips.items()},
        "share_of_78g_peak": {k: round(v * macs / PEAK_MACS, 3) for k, v in ips.items()},
        "max_abs_logit_diff_same_weights": agree,
        "step_times_s": {k: [round(t, 4) for t in v] for k, v in times.items()},
    }
    if load:
        result["under_load"] = measure_loaded(steps, ours, batch, res, threads, n, ips)
    return result


def measure_loaded(steps, ours, batch, res, threads, n, quiet_ips):
    """The same rounds beside one CPU-bound process at nice 19."""
    spin = subprocess.Popen(["nice", "-n", "19", sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)
        governor = ThreadGovernor(every_s=0.0)
        torch.set_num_threads(threads)
        picked = governor.start(probe_s=1.0)
        loaded = dict(steps)
        loaded["effnet_auto_threads"] = make_step(ours, batch, res, lambda: governor.threads)
        times = rounds(loaded, n)
    finally:
        spin.kill()
        spin.wait()
    ips = {k: batch / statistics.median(v) for k, v in times.items()}
    return {
        "competing_process": "python busy loop at nice 19",
        "threads_picked": picked,
        "others_busy_cores_measured": round(governor.others_busy, 2),
        "images_per_s": {k: round(v, 1) for k, v in ips.items()},
        "ratio_vs_timm_loaded": {k: round(v / ips["timm"], 3) for k, v in ips.items()},
        "loaded_over_quiet": {
            k: round(v / quiet_ips["effnet" if k.startswith("effnet") else k], 3)
            for k, v in ips.items()
        },
        "step_times_s": {k: [round(t, 4) for t in v] for k, v in times.items()},
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="32x128,64x64", help="RESxBATCH,... (default both)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--load", action="store_true", help="also beside a competing process")
    p.add_argument("--out", default=str(RESULTS / "train_throughput.json"))
    args = p.parse_args()
    import timm

    load_before = [round(x, 2) for x in os.getloadavg()]
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    runs = [measure(r, b, args.threads, args.rounds, args.load) for r, b in sizes]
    result = {
        "config": vars(args),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "cpu": platform.processor() or platform.machine(),
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "runs": runs,
        "read": "ratios of interleaved rounds are the result; absolute times vary",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for r in runs:
        line = (
            f"B0 {r['resolution']}x{r['resolution']} batch {r['batch']}: "
            f"effnet {r['images_per_s']['effnet']} img/s, timm {r['images_per_s']['timm']} "
            f"img/s -> {r['ratio_vs_timm']:.2f}x timm; {r['g_macs_per_s']['effnet']} G "
            f"multiply-adds/s = {r['share_of_78g_peak']['effnet']:.0%} of the 78 G/s peak "
            f"(timm {r['share_of_78g_peak']['timm']:.0%}); same weights, max |logit diff| "
            f"eval {r['max_abs_logit_diff_same_weights']['eval']:.1e} "
            f"train {r['max_abs_logit_diff_same_weights']['train']:.1e}"
        )
        print(line)
        if "under_load" in r:
            u = r["under_load"]
            print(
                f"  beside a nice-19 busy loop: picked {u['threads_picked']} thread(s); "
                f"loaded/quiet speed: {u['loaded_over_quiet']}; vs timm loaded: "
                f"{u['ratio_vs_timm_loaded']}"
            )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
