"""Inference latency of EfficientNet-B0 at 224: ours (eager, optimised PyTorch, ONNX Runtime)
against timm's efficientnet_b0 (eager, channels_last) and ONNX Runtime on timm's own export.

Run in the reference environment (timm + onnxruntime), with effnet installed there:

    /opt/effnet-reference/bin/pip install -q -e . --no-deps
    /opt/effnet-reference/bin/python benchmarks/bench_inference.py [--repeats 20] [--batches 1 16]

All paths run in one process with 2 threads, interleaved round by round (the order rotates
each round and reverses every other round, so no path always follows the same one) so that
load from other processes hits them alike; each call starts after 20 ms idle (--gap-ms), so
the previous path's spinning threads are not timed with it. The median per path is
reported, as ratios against timm channels_last (= 1.0) and against ORT on timm's export,
and the median of the per-round (paired) ratios against ORT on timm's export with a 95%
bootstrap interval. ``ours_ort_no_gate_rewrite`` is our export in ORT's plain session, to
separate the export's share of the gain from the session's (``effnet.ortgraph``).
Both models hold the same weights (timm's state dict loaded into ours), so every path's
output is compared with eager PyTorch. No pretrained weights are downloaded: timm's random
initialisation is given realistic batch-norm statistics by two forward passes in train
mode (without them activations shrink into float denormals and every path slows down
unrealistically). Results go to benchmarks/results/inference.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import timm
import timm.utils.onnx
import torch

import effnet
from effnet.infer import Runner, onnx_bytes, onnx_session
from effnet.machine import machine_info

HERE = Path(__file__).resolve().parent


def timm_model() -> torch.nn.Module:
    torch.manual_seed(0)
    m = timm.create_model("efficientnet_b0")
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.momentum = None  # cumulative average over the calibration batches
    m.train()
    with torch.no_grad():
        for _ in range(2):
            m(torch.randn(8, 3, 224, 224))
    return m.eval()


def ours_from(timm_b0: torch.nn.Module) -> torch.nn.Module:
    sd = timm_b0.state_dict()
    ours = effnet.create_model("efficientnet_b0")
    try:
        from effnet.weights import load_timm

        load_timm(ours, sd)
    except ImportError:  # before effnet.weights existed: keys match but for stage 1 names
        ours = effnet.create_model("efficientnet_b0", norm=effnet.Norm(eps=1e-5, momentum=0.1))
        mapped = {}
        for k, v in sd.items():
            if k.startswith("blocks.0."):
                k = k.replace(".bn2.", ".bn3.").replace(".bn1.", ".bn2.")
                k = k.replace(".conv_pw.", ".conv_pwl.")
            mapped[k] = v
        ours.load_state_dict(mapped)
    return ours.eval()


def timm_onnx(model: torch.nn.Module, folder: str) -> str:
    path = os.path.join(folder, "timm_b0.onnx")
    timm.utils.onnx.onnx_export(
        model, path, batch_size=1, input_size=(3, 224, 224), opset=17, check=True
    )
    model.eval()
    return path


def median_ms(times: list[float]) -> float:
    return 1000.0 * statistics.median(times)


def paired_ratio(reference: list[float], path: list[float], seed: int = 0) -> dict:
    """Median of the per-round ratios reference / path, with a 95% bootstrap interval."""
    ratios = np.array(reference) / np.array(path)
    rng = np.random.default_rng(seed)
    boot = np.median(rng.choice(ratios, size=(2000, len(ratios))), axis=1)
    return {
        "median": float(np.median(ratios)),
        "ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
    }


def bench(batch: int, repeats: int, paths: dict, x: torch.Tensor, gap_s: float) -> dict:
    for fn in paths.values():  # warm-up: traces, ORT arenas, oneDNN primitives
        fn(x)
        fn(x)
    times: dict[str, list[float]] = {k: [] for k in paths}
    names = list(paths)
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        if r % 2:  # alternate direction too, so no path always follows the same one
            order = order[::-1]
        for k in order:
            time.sleep(gap_s)  # the previous path's spinning threads go idle first
            t = time.perf_counter()
            paths[k](x)
            times[k].append(time.perf_counter() - t)
    med = {k: median_ms(v) for k, v in times.items()}
    spread = {
        k: [1000 * float(np.percentile(v, 25)), 1000 * float(np.percentile(v, 75))]
        for k, v in times.items()
    }
    return {
        "batch": batch,
        "repeats": repeats,
        "gap_ms": 1000 * gap_s,
        "median_ms": med,
        "iqr_ms": spread,
        "speedup_vs_timm_channels_last": {k: med["timm_eager_cl"] / v for k, v in med.items()},
        "speedup_vs_ort_timm": {k: med["ort_timm"] / v for k, v in med.items()},
        "paired_vs_ort_timm": {k: paired_ratio(times["ort_timm"], v) for k, v in times.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--repeats", type=int, nargs="+", default=[60, 12], help="per batch size")
    ap.add_argument("--gap-ms", type=float, default=20.0, help="idle time before each call")
    ap.add_argument("--out", default=str(HERE / "results" / "inference.json"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)

    tm = timm_model()
    ours = ours_from(tm)
    tm_cl = timm_model_copy(tm).to(memory_format=torch.channels_last)
    tmp = tempfile.mkdtemp(prefix="bench_inference_")
    # ORT as a timm user runs it: the plain optimised session (our SE gate rewrite finds
    # nothing to rewrite in timm's graph anyway: its map also feeds a ReduceMean)
    ort_timm = onnx_session(
        timm_onnx(timm_model_copy(tm), tmp), threads=2, nchwc_gates=False, spinning=False
    )
    ours_plain = onnx_session(onnx_bytes(ours, 224), threads=2, nchwc_gates=False, spinning=False)
    shutil.rmtree(tmp)  # the session holds the model
    torch_runner = Runner(ours, backend="torch", threads=2)
    ort_runner = Runner(ours, backend="onnxruntime", threads=2, spinning=False)

    def eager(m: torch.nn.Module, cl: bool = False):
        def run(x: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                return m(x.contiguous(memory_format=torch.channels_last) if cl else x)

        return run

    def ort_path(session):
        def run(x: torch.Tensor) -> torch.Tensor:
            name = session.get_inputs()[0].name
            return torch.from_numpy(session.run(None, {name: x.numpy()})[0])

        return run

    paths = {
        "timm_eager_cl": eager(tm_cl, cl=True),
        "ort_timm": ort_path(ort_timm),
        "ours_eager": eager(ours),
        "ours_torch_optimised": torch_runner.logits,
        "ours_ort_no_gate_rewrite": ort_path(ours_plain),
        "ours_ort": ort_runner.logits,
    }
    results = []
    repeats = args.repeats + [args.repeats[-1]] * (len(args.batches) - len(args.repeats))
    for batch, reps in zip(args.batches, repeats):
        x = torch.randn(batch, 3, 224, 224)
        with torch.inference_mode():
            want = tm(x)
        diffs = {k: float((fn(x).float() - want).abs().max()) for k, fn in paths.items()}
        load0 = os.getloadavg()
        r = bench(batch, reps, paths, x, args.gap_ms / 1000)
        r["max_abs_diff_vs_eager"] = diffs
        r["logit_scale"] = float(want.abs().max())
        r["loadavg_before_after"] = [load0[0], os.getloadavg()[0]]
        results.append(r)
        print(f"\nbatch {batch}: median of {reps} interleaved runs, 2 threads")
        print(
            f"{'path':24s} {'ms':>9s} {'vs timm cl':>11s} {'vs ORT timm':>12s} "
            f"{'paired, 95% CI':>20s} {'max|diff|':>10s}"
        )
        for k in paths:
            pr = r["paired_vs_ort_timm"][k]
            paired = f"{pr['median']:.2f}x [{pr['ci95'][0]:.2f}, {pr['ci95'][1]:.2f}]"
            print(
                f"{k:24s} {r['median_ms'][k]:9.2f} "
                f"{r['speedup_vs_timm_channels_last'][k]:10.2f}x "
                f"{r['speedup_vs_ort_timm'][k]:11.2f}x {paired:>20s} {diffs[k]:10.2e}"
            )
        print(f"load average before/after: {r['loadavg_before_after']}")
    report = {
        "model": "efficientnet_b0 @ 224",
        "threads": 2,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "onnxruntime": ort.__version__,
        "machine": machine_info(2),  # CPU model and flags, cores, threads, torch, oneDNN
        "note": "one process, paths interleaved; see loadavg for other load",
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")


def timm_model_copy(tm: torch.nn.Module) -> torch.nn.Module:
    m = timm.create_model("efficientnet_b0")
    m.load_state_dict(tm.state_dict())
    return m.eval()


if __name__ == "__main__":
    main()
