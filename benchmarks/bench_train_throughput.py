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
- ``--load``: blocks of steps on a quiet machine and beside one CPU-bound busy loop (at
  nice 19, and at nice 0): timm and ours at 2 threads (PyTorch's default), and ours with
  the thread count training picks (:class:`effnet.threads.ThreadGovernor`), each as a
  ratio to its quiet speed and to timm beside the same load.

Writes benchmarks/results/train_throughput.json.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from effnet import convs
from effnet.hub import create_model
from effnet.machine import machine_info
from effnet.profile import arch_macs
from effnet.registry import get_arch
from effnet.threads import ThreadGovernor
from effnet.weights import load_timm

RESULTS = Path(__file__).parent / "results"
PEAK_MACS = 78e9  # fp32 multiply-adds/s of this CPU on 2 threads (measured GEMM peak)


def with_paths(step, small_map, matmul_map):
    """``step`` run with other thresholds of the small-map paths (0: oneDNN everywhere)."""

    def run():
        old = convs.SMALL_MAP, convs.MATMUL_MAP
        convs.SMALL_MAP, convs.MATMUL_MAP = small_map, matmul_map
        try:
            step()
        finally:
            convs.SMALL_MAP, convs.MATMUL_MAP = old

    return run


def make_step(model, batch, res, threads):
    model = model.to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, res, res).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,))

    def step():
        if threads is not None:
            torch.set_num_threads(threads() if callable(threads) else threads)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def same_outputs(timm_model, res):
    """Max abs logit difference with timm's weights in ours (eval and train-mode forward;
    dropout off in both, the two draw their masks differently)."""
    ours = create_model("efficientnet_b0", drop_path=0.0, dropout=0.0)
    load_timm(ours, timm_model.state_dict())
    drop_rate, timm_model.drop_rate = timm_model.drop_rate, 0.0
    x = torch.randn(8, 3, res, res).contiguous(memory_format=torch.channels_last)
    out = {}
    for mode in ("eval", "train"):
        a, b = ours.train(mode == "train"), timm_model.train(mode == "train")
        a, b = a.to(memory_format=torch.channels_last), b.to(memory_format=torch.channels_last)
        with torch.no_grad():
            ya, yb = a(x), b(x)
        out[mode] = (ya - yb).abs().max().item()
        out[f"{mode}_max_abs_logit"] = ya.abs().max().item()
    timm_model.drop_rate = drop_rate
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


def measure(res, batch, threads, n, load, load_s=20.0):
    import timm

    torch.manual_seed(0)
    timm_model = timm.create_model("efficientnet_b0")
    agree = same_outputs(timm_model, res)
    ours = create_model("efficientnet_b0", drop_path=0.0)  # timm's default drop path is 0
    steps = {
        "effnet": make_step(ours, batch, res, threads),
        "timm": make_step(timm_model, batch, res, threads),
    }
    # one change at a time: the same model with the 1x1 matmul path off, and with both
    # small-map paths off (every conv through oneDNN, as before)
    steps["effnet_no_matmul_1x1"] = with_paths(steps["effnet"], convs.SMALL_MAP, 0)
    steps["effnet_onednn_only"] = with_paths(steps["effnet"], 0, 0)
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
        "ratios_vs_timm_all": {k: round(v / ips["timm"], 3) for k, v in ips.items()},
        "ratio_vs_timm_best_round": round(min(times["timm"]) / min(times["effnet"]), 3),
        "train_macs_per_image": macs,
        "g_macs_per_s": {k: round(v * macs / 1e9, 2) for k, v in ips.items()},
        "share_of_78g_peak": {k: round(v * macs / PEAK_MACS, 3) for k, v in ips.items()},
        "max_abs_logit_diff_same_weights": agree,
        "step_times_s": {k: [round(t, 4) for t in v] for k, v in times.items()},
    }
    if load:
        result["under_load"] = measure_loaded(ours, timm_model, batch, res, threads, load_s)
    return result


def block(step, batch, seconds, tick=None):
    """Steps in a row for about ``seconds``: images/s over the block (probes included)."""
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        n += 1
        if tick is not None:
            tick()
    return n * batch / (time.perf_counter() - t0)


def measure_loaded(ours, timm_model, batch, res, threads, seconds):
    """Blocks of steps on a quiet machine and beside one CPU-bound busy loop (at nice 19
    and at nice 0): timm and ours at 2 threads (PyTorch's default), and ours with the
    thread count training picks (:class:`effnet.threads.ThreadGovernor`, probes every 5 s
    here, every 60 s in training)."""
    fixed = {
        "effnet": make_step(ours, batch, res, threads),
        "timm": make_step(timm_model, batch, res, threads),
    }
    governed = make_step(ours, batch, res, None)
    out = {}
    for name, cmd in (
        ("quiet", None),
        ("nice19", ["nice", "-n", "19", sys.executable, "-c", "while True: pass"]),
        ("nice0", [sys.executable, "-c", "while True: pass"]),
    ):
        spin = subprocess.Popen(cmd) if cmd else None
        try:
            time.sleep(1.0)
            ips = {k: block(f, batch, seconds) for k, f in fixed.items()}
            governor = ThreadGovernor(most=threads, every_s=5.0, probe_steps=3)
            governor.start()
            ips["effnet_auto_threads"] = block(governed, batch, 2 * seconds, governor.tick)
            out[name] = {
                "images_per_s": {k: round(v, 1) for k, v in ips.items()},
                "threads_at_end": governor.threads,
                "probes": [list(h) for h in governor.history],
            }
        finally:
            if spin is not None:
                spin.kill()
                spin.wait()
    quiet = out["quiet"]["images_per_s"]
    for name in ("nice19", "nice0"):
        loaded = out[name]["images_per_s"]
        out[name]["over_quiet_same_model"] = {
            k: round(v / quiet["effnet" if k.startswith("effnet") else k], 3)
            for k, v in loaded.items()
        }
        out[name]["vs_timm_here"] = {k: round(v / loaded["timm"], 3) for k, v in loaded.items()}
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="32x128,64x64", help="RESxBATCH,... (default both)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--load", action="store_true", help="also beside a competing process")
    p.add_argument("--load-seconds", type=float, default=20.0, help="per block under load")
    p.add_argument("--out", default=str(RESULTS / "train_throughput.json"))
    args = p.parse_args()
    import timm

    load_before = [round(x, 2) for x in os.getloadavg()]
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    runs = [
        measure(r, b, args.threads, args.rounds, args.load, args.load_seconds) for r, b in sizes
    ]
    result = {
        "config": vars(args),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "machine": machine_info(),  # CPU model and flags, cores, threads, torch, oneDNN
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
        print(f"  one change at a time (x timm): {r['ratios_vs_timm_all']}")
        for name in ("nice19", "nice0"):
            u = r.get("under_load", {}).get(name)
            if u:
                print(
                    f"  beside a busy loop at {name}: speed over quiet {u['over_quiet_same_model']}"
                    f"; vs timm there {u['vs_timm_here']}; auto ended at "
                    f"{u['threads_at_end']} thread(s)"
                )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
