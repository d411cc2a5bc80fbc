"""ORT's static quantization tools, wrapped for effnet: one fp32 export prepared once,
calibration ranges cached per method, QDQ files written with any subset of layers quantized.

Weights are int8 per output channel, activations uint8 (ORT's U8S8 x86 path). Without VNNI,
x86 CPUs multiply u8 x s8 pairs with VPMADDUBSW, whose 16-bit sums can saturate; there ORT
advises 7-bit weights (``reduce_range``), which ``needs_reduce_range`` detects. ORT fuses
each DequantizeLinear -> op -> QuantizeLinear group into an int8 kernel (QLinearConv,
QLinearMul, QLinearSigmoid, ...).
"""

from __future__ import annotations

import contextlib
import io
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from effnet.export import export_onnx
from effnet.infer import onnx_session

OP_CHOICES = {"all": None, "conv": ["Conv", "Gemm"]}  # None: every op ORT can quantize


VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags from /proc/cpuinfo, or None where they cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    flags = (
        line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")
    )
    return set().union(*flags) or None


def needs_reduce_range(flags: set[str] | None = None) -> bool:
    """True on an x86 CPU known to lack VNNI (7-bit weights avoid VPMADDUBSW saturation);
    False with VNNI, on other architectures, or where the flags are unknown (ORT's default)."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return False
    flags = cpu_flags() if flags is None else flags
    return flags is not None and not any(f in flags for f in VNNI_FLAGS)


def onnx_logits(path: str | Path, x: torch.Tensor, batch: int = 256) -> np.ndarray:
    """Logits of an ONNX model in ONNX Runtime (one thread, all graph optimisations)."""

    session = onnx_session(path, threads=1, nchwc_gates=False)
    name = session.get_inputs()[0].name
    parts = [
        session.run(None, {name: x[i : i + batch].numpy().astype(np.float32)})[0]
        for i in range(0, len(x), batch)
    ]
    return np.concatenate(parts)


def median_ms(path: str | Path, x: torch.Tensor, runs: int = 10) -> float:
    """Median latency of one ``x`` batch in ONNX Runtime, one thread, after two warm-ups."""

    session = onnx_session(path, threads=1, nchwc_gates=False)
    feed = {session.get_inputs()[0].name: x.numpy().astype(np.float32)}
    times = []
    for i in range(runs + 2):
        t = time.perf_counter()
        session.run(None, feed)
        if i >= 2:
            times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


class _Reader:
    """ORT's CalibrationDataReader protocol over a tensor of images, in equal batches (ORT's
    histogram calibrators stack the batches' outputs, so a short last batch breaks them)."""

    def __init__(self, x: torch.Tensor, name: str, most: int = 64) -> None:
        batch = max(b for b in range(1, most + 1) if len(x) % b == 0)
        self.batches = [x[i : i + batch].numpy() for i in range(0, len(x), batch)]
        self.name, self.i = name, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.i >= len(self.batches):
            return None
        self.i += 1
        return {self.name: self.batches[self.i - 1]}

    def __len__(self) -> int:
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        pass


class Quantizer:
    """One fp32 model prepared for ORT quantization; calibration ranges cached per method."""

    def __init__(
        self, model: nn.Module, calib: torch.Tensor, workdir: Path, reduce_range: bool = False
    ) -> None:
        # ONNX and ONNX Runtime load only when a model is exported or run in ONNX
        from onnxruntime.quantization import quant_pre_process

        self.workdir, self.calib, self.reduce_range = workdir, calib, reduce_range
        self.fp32 = workdir / "fp32.onnx"
        size = calib.shape[-1]
        export_onnx(model, self.fp32, image_size=size, dynamic_batch=True, validate=False)
        self.prepared = workdir / "fp32.pre.onnx"
        quant_pre_process(str(self.fp32), str(self.prepared))
        self.layers = conv_names(self.prepared)

    def quantize(
        self,
        out: Path,
        method: str,
        ops: str = "all",
        exclude: list[str] | None = None,
        only: list[str] | None = None,
    ) -> Path:
        """Write the QDQ model; the first call per method calibrates (every op type)."""
        cache = self.workdir / f"ranges.{method}.json"
        if not cache.exists():  # ranges for every op type, so any later subset finds them
            self._run(self.workdir / "calib.onnx", method, cache, None, [], [])
        return self._run(out, method, cache, OP_CHOICES[ops], exclude or [], only or [])

    def _run(
        self,
        out: Path,
        method: str,
        cache: Path,
        ops: list[str] | None,
        exclude: list[str],
        only: list[str],
    ) -> Path:
        # ONNX and ONNX Runtime load only when a model is exported or run in ONNX
        from onnxruntime.quantization import (
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )

        calibrate = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                     "percentile": CalibrationMethod.Percentile}[method]  # fmt: skip
        reader = None if cache.exists() else _Reader(self.calib, "input")
        options = {"CalibPercentile": 99.999, "CalibMaxIntermediateOutputs": 8}
        with contextlib.redirect_stdout(io.StringIO()):  # ORT prints calibration progress
            quantize_static(
                str(self.prepared), str(out), reader, quant_format=QuantFormat.QDQ,
                op_types_to_quantize=ops, per_channel=True, reduce_range=self.reduce_range,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                nodes_to_quantize=only, nodes_to_exclude=exclude, calibrate_method=calibrate,
                calibration_cache_path=str(cache), extra_options=options,
            )  # fmt: skip
        return out


def conv_names(path: Path) -> list[str]:
    # ONNX and ONNX Runtime load only when a model is exported or run in ONNX
    import onnx

    graph = onnx.load(str(path)).graph
    return [n.name for n in graph.node if n.op_type in ("Conv", "Gemm")]


def copy_metadata(src: Path, dst: Path, extra: dict[str, str]) -> None:
    """The fp32 export's metadata (architecture, class names) onto ``dst``, plus ``extra``."""
    # ONNX and ONNX Runtime load only when a model is exported or run in ONNX
    import onnx

    proto = onnx.load(str(dst))
    have = {p.key for p in proto.metadata_props}
    for p in onnx.load(str(src)).metadata_props:
        if p.key not in have:
            proto.metadata_props.add(key=p.key, value=p.value)
    for key, value in extra.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(dst))
