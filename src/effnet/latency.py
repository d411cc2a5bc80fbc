"""Latency measured on this machine: a budget that FLOPs only approximate.

lat = measure("efficientnet_b0", backend="onnxruntime", threads=1)
rows = compare(["efficientnet_b0", "resnet50"], threads=1)   # interleaved rounds

Depthwise convolutions and activations cost more time per multiply-add than dense
convolutions, so the paper's Table 4 compares latency, not FLOPs. Each model gets
``warmup`` untimed calls (the first one traces the graph or builds the ONNX Runtime
session), then ``rounds`` timed calls; with several models the rounds interleave (one
call of each model per round, the order rotating) so that a slow spell of the machine
touches every model alike. Weights are random: latency does not depend on them.
"""

from __future__ import annotations

import math
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from effnet.arch import Architecture
from effnet.errors import EffnetError
from effnet.infer import Runner, load_model
from effnet.model import build
from effnet.profile import macs_of
from effnet.scaling import ALPHA, BETA, GAMMA, Fit, fit_budget, scale_phi

LATENCY_BACKENDS = ("torch", "onnxruntime", "int8")
Model = nn.Module | Architecture | str | Path


@dataclass(frozen=True)
class Latency:
    """Milliseconds per call of one batch: median and quartiles over the timed rounds."""

    model: str
    backend: str
    batch: int
    image_size: int
    threads: int
    rounds: int
    median_ms: float
    p25_ms: float
    p75_ms: float

    @property
    def images_per_s(self) -> float:
        return self.batch * 1000.0 / self.median_ms

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "images_per_s": self.images_per_s}


def parse_ms(text: str) -> float:
    """'20ms', '20', '0.02s' -> milliseconds (a positive finite number)."""
    m = re.fullmatch(r"\s*([0-9.eE+-]+)\s*(ms|s)?\s*", text)
    try:
        value = float(m.group(1)) if m else math.nan
    except ValueError:
        value = math.nan
    if m and m.group(2) == "s":
        value *= 1000.0
    if not (math.isfinite(value) and value > 0):
        raise EffnetError(f"a latency must be a positive time such as 20ms, got {text!r}")
    return value


def _module(model: Model) -> nn.Module:
    if isinstance(model, nn.Module):
        return model.eval()
    if isinstance(model, Architecture):
        return build(model).eval()
    return load_model(model)


def _name(model: Model, module: nn.Module) -> str:
    arch = getattr(module, "arch", None)
    if isinstance(model, str | Path):
        return str(model)
    return arch.name if arch is not None else type(module).__name__


def _resolution(module: nn.Module) -> int:
    arch = getattr(module, "arch", None)
    if arch is None:
        raise EffnetError(f"{type(module).__name__} has no architecture: give image_size")
    return int(arch.resolution)


def _quantile(sorted_ms: list[float], q: float) -> float:
    """Linear interpolation between the nearest ranks (numpy's default)."""
    pos = q * (len(sorted_ms) - 1)
    i = int(pos)
    j = min(i + 1, len(sorted_ms) - 1)
    return sorted_ms[i] + (sorted_ms[j] - sorted_ms[i]) * (pos - i)


def compare(
    models: Sequence[Model],
    backend: str = "torch",
    batch: int = 1,
    threads: int | None = None,
    rounds: int = 20,
    warmup: int = 3,
    image_size: int | None = None,
) -> list[Latency]:
    """Latency of each model, in the given order, measured in interleaved rounds.

    ``image_size`` defaults to each model's own resolution; ``threads`` to torch's.
    """
    if backend not in LATENCY_BACKENDS:
        raise EffnetError(f"unknown backend {backend!r} (known: {', '.join(LATENCY_BACKENDS)})")
    for label, v in (("batch", batch), ("rounds", rounds), ("threads", threads or 1)):
        if v < 1:
            raise EffnetError(f"{label} must be >= 1, got {v}")
    if warmup < 0:
        raise EffnetError(f"warmup must be >= 0, got {warmup}")
    if not models:
        raise EffnetError("no model to measure")
    n_threads = threads or torch.get_num_threads()
    spinning = len(models) == 1  # spinning sessions taking turns slow each other
    modules = [_module(m) for m in models]
    sizes = [image_size or _resolution(m) for m in modules]
    inputs = [
        torch.randn(batch, int(getattr(m, "in_chans", 3)), s, s) for m, s in zip(modules, sizes)
    ]
    with tempfile.TemporaryDirectory(prefix="effnet-bench-") as tmp:
        if backend == "int8":
            runners = [
                int8_runner(m, s, n_threads, Path(tmp) / f"{i}.int8.onnx", spinning)
                for i, (m, s) in enumerate(zip(modules, sizes))
            ]
        else:
            runners = [
                Runner(m, backend=backend, threads=n_threads, spinning=spinning) for m in modules
            ]
        times = _timed_rounds(runners, inputs, n_threads, rounds, warmup)
    out = []
    for model, module, size, ms in zip(models, modules, sizes, times):
        ms = sorted(ms)
        out.append(
            Latency(
                model=_name(model, module),
                backend=backend,
                batch=batch,
                image_size=size,
                threads=n_threads,
                rounds=rounds,
                median_ms=_quantile(ms, 0.5),
                p25_ms=_quantile(ms, 0.25),
                p75_ms=_quantile(ms, 0.75),
            )  # fmt: skip
        )
    return out


def int8_runner(
    module: nn.Module, size: int, threads: int, path: Path, spinning: bool = True
) -> Runner:
    """ONNX Runtime on the model quantized to INT8 (QDQ, per-channel weights; effnet.quantize
    with MinMax ranges of 16 random images, no layer kept in fp32, the quantized op set that
    runs fastest here): speed does not depend on the calibration images."""
    # ONNX Runtime's quantizer loads only for this backend
    from effnet.quantize import Images, quantize

    in_chans = int(getattr(module, "in_chans", 3))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, in_chans, size, size, generator=gen)
    quantize(module, Images(x, None, "random"), Images(x[:4], None, "random"), path,
             method="minmax", keep_fp32=0)  # fmt: skip
    return Runner(backend="onnxruntime", threads=threads, onnx_path=path, spinning=spinning)


def _timed_rounds(
    runners: list[Runner], inputs: list[torch.Tensor], n_threads: int, rounds: int, warmup: int
) -> list[list[float]]:
    """Milliseconds of each runner's calls: ``warmup`` untimed calls each, then ``rounds``
    rounds of one call per runner, the order rotating."""
    times: list[list[float]] = [[] for _ in runners]
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        for runner, x in zip(runners, inputs):
            for _ in range(warmup):
                runner.logits(x)
        for r in range(rounds):
            for k in range(len(runners)):
                i = (k + r) % len(runners)
                start = time.perf_counter()
                runners[i].logits(inputs[i])
                times[i].append((time.perf_counter() - start) * 1000.0)
    finally:
        torch.set_num_threads(previous)
    return times


def measure(model: Model, **options: Any) -> Latency:
    """Latency of one model; ``options`` as for :func:`compare`."""
    return compare([model], **options)[0]


def latency_cost(**options: Any) -> Callable[[Architecture], float]:
    """A cost function for budget fitting: median milliseconds of an architecture, each
    architecture measured once (the cache lives as long as the returned function)."""
    cache: dict[Architecture, float] = {}

    def cost(arch: Architecture) -> float:
        if arch not in cache:
            cache[arch] = measure(arch, **options).median_ms
        return cache[arch]

    cost.cache = cache  # type: ignore[attr-defined]
    return cost


def fit_latency(
    base: Architecture,
    budget_ms: float,
    cost: Callable[[Architecture], float],
    alpha: float = ALPHA,
    beta: float = BETA,
    gamma: float = GAMMA,
    max_steps: int = 8,
) -> Fit:
    """The largest compound scaling of ``base`` whose ``cost`` (ms) is within ``budget_ms``.

    Measuring phi in the FLOPs fit's range (-8 to 12) would time networks thousands of
    times B0's size, so the bisection starts from a bracket one unit of phi wide around the
    guess log2(budget / cost(base)) (FLOPs double per unit of phi), widened a unit at a time
    until the budget lies inside it. Timing noise can make the cost non-monotone; the
    bisection then still ends on a network measured within the budget.
    """
    if not (math.isfinite(budget_ms) and budget_ms > 0):
        raise EffnetError(f"latency budget must be a positive number of ms, got {budget_ms}")

    def at(phi: float) -> float:
        return cost(scale_phi(base, phi, alpha, beta, gamma))

    guess = math.log2(budget_ms / cost(base))
    lo, hi = guess - 0.5, guess + 0.5
    for _ in range(max_steps):
        if _cost_or_inf(at, lo) > budget_ms:
            lo, hi = lo - 1.0, lo
        elif _cost_or_inf(at, hi) <= budget_ms:
            lo, hi = hi, hi + 1.0
        else:
            break
    return fit_budget(base, budget_ms, cost, alpha, beta, gamma, phi_range=(lo, hi))


def _cost_or_inf(at: Callable[[float], float], phi: float) -> float:
    try:
        return at(phi)
    except EffnetError:  # e.g. the feature map vanishes at a tiny resolution
        return math.inf


@dataclass(frozen=True)
class LatencyFit:
    """A latency-fitted model beside the FLOPs-fitted one at the same nominal cost.

    The nominal cost is the budget in multiply-adds at the base model's speed
    (budget_ms x base multiply-adds / base ms): what a FLOPs budget assumes. Both are
    measured again after fitting, each alone as in the search: interleaved with a larger
    model, a small one runs 10-20% slower on a 2-core machine (its caches are evicted).
    """

    budget_ms: float
    base_ms: float
    nominal_macs: float
    latency_fit: Fit
    flops_fit: Fit
    latency: Latency  # of latency_fit.arch, re-measured
    flops_latency: Latency  # of flops_fit.arch
    measured: int  # architectures timed during the search

    def to_dict(self) -> dict[str, Any]:
        def side(f: Fit, lat: Latency) -> dict[str, Any]:
            return dict(model=f.arch.name, phi=f.value, resolution=f.arch.resolution,
                        macs=macs_of(f.arch), median_ms=lat.median_ms,
                        off_budget=lat.median_ms / self.budget_ms - 1)  # fmt: skip

        return dict(
            budget_ms=self.budget_ms, base_ms=self.base_ms, nominal_macs=self.nominal_macs,
            measured=self.measured, backend=self.latency.backend, batch=self.latency.batch,
            threads=self.latency.threads, latency_fit=side(self.latency_fit, self.latency),
            flops_fit=side(self.flops_fit, self.flops_latency),
        )  # fmt: skip


def fit_latency_vs_flops(
    base: Architecture,
    budget_ms: float,
    alpha: float = ALPHA,
    beta: float = BETA,
    gamma: float = GAMMA,
    **options: Any,
) -> LatencyFit:
    """Fit phi to ``budget_ms`` by measuring, and by FLOPs at the same nominal cost;
    ``options`` as for :func:`compare`."""
    cost = latency_cost(**options)
    f = fit_latency(base, budget_ms, cost, alpha, beta, gamma)
    base_ms = cost(base)
    nominal = budget_ms * macs_of(base) / base_ms
    g = fit_budget(base, nominal, macs_of, alpha, beta, gamma)
    lat, flat = measure(f.arch, **options), measure(g.arch, **options)
    return LatencyFit(budget_ms, base_ms, nominal, f, g, lat, flat, len(cost.cache))  # type: ignore[attr-defined]
