"""The machine a measurement ran on, as every benchmark result and ``effnet bench`` record
it: the CPU model, the instruction-set flags that change which kernels run (AVX2, AVX-512
and its VNNI / BF16 / FP16 parts, AMX), the cores and threads, and the torch and oneDNN
versions. A speed claim holds for the machine it names, no other."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path
from typing import Any

FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx512_fp16",
         "amx_tile", "amx_bf16", "amx_int8")  # fmt: skip


def _cpuinfo() -> tuple[str, set[str]]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), set()
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    flags = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
    name = model.group(1).strip() if model else platform.machine()
    return name, set(flags.group(1).split()) if flags else set()


def machine_info(threads: int | None = None) -> dict[str, Any]:
    """The record (JSON-able). ``threads``: the intra-op threads the measurement used
    (default: torch's current count)."""
    import torch

    name, flags = _cpuinfo()
    built = re.search(r"(?:MKL-DNN|oneDNN)\D*v?(\d+\.\d+(?:\.\d+)?)", torch.__config__.show())
    return {
        "cpu": name,
        "flags": [f for f in FLAGS if f in flags],
        "cores": os.cpu_count(),
        "threads": threads or torch.get_num_threads(),
        "torch": torch.__version__,
        "onednn": built.group(1) if built else None,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def describe(info: dict[str, Any]) -> str:
    """One line: ``Intel(R) Xeon(R) ... (avx2, avx512f, amx_bf16), 2 cores, 2 threads, torch
    2.13.0``."""
    flags = ", ".join(info["flags"]) or "no AVX2"
    gpu = f", GPU {info['cuda']}" if info.get("cuda") else ""
    return (f"{info['cpu']} ({flags}), {info['cores']} cores, {info['threads']} thread(s), "
            f"torch {info['torch']}{gpu}")  # fmt: skip
