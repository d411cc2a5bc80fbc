"""Compound model scaling as pure functions (Tan & Le 2019, section 3.3).

``scale`` maps one :class:`Architecture` to another; it never mutates its input and
imports no torch. Which channel counts "width" multiplies and which stages "depth"
repeats is declared per stage in the architecture data (``scale_width``,
``scale_depth``), so one mechanism serves every family.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from effnet.arch import Architecture
from effnet.errors import EffnetError

# The paper's grid-search result for B0 (section 4): the one place these numbers are written.
PAPER_COEFFICIENTS = (1.2, 1.1, 1.15)  # alpha (depth), beta (width), gamma (resolution)
ALPHA, BETA, GAMMA = PAPER_COEFFICIENTS


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """Scale a channel count by ``width`` and round to a multiple of ``divisor``.

    Multiples of 8 map well onto SIMD lanes and tensor cores, which is why every public
    implementation rounds this way. Rounding to the nearest multiple could lose more
    than 10% of the channels for small counts, so if it does, one more ``divisor`` is
    added (the "10% rule" of the official code).
    """
    if width <= 0:
        raise EffnetError(f"width multiplier must be positive, got {width}")
    scaled = _finite(channels * width, f"{channels} channels x width {width:g}")
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if new < 0.9 * scaled:
        new += divisor
    return int(new)


def round_repeats(layers: int, depth: float, rounding: str = "ceil") -> int:
    """Scale a stage's layer count by ``depth``, rounding up as published (``"ceil"``) or to
    the nearest whole layer (``"round"``, halves up); never below one layer."""
    if depth <= 0:
        raise EffnetError(f"depth multiplier must be positive, got {depth}")
    scaled = _finite(layers * depth, f"{layers} layers x depth {depth:g}")
    whole = math.ceil(scaled) if rounding == "ceil" else math.floor(scaled + 0.5)
    return max(1, int(whole))


def round_resolution(resolution: int, multiplier: float) -> int:
    if multiplier <= 0:
        raise EffnetError(f"resolution multiplier must be positive, got {multiplier}")
    scaled = _finite(resolution * multiplier, f"{resolution} px x resolution {multiplier:g}")
    return max(1, int(round(scaled)))


def _finite(value: float, what: str) -> float:
    if not math.isfinite(value):
        raise EffnetError(f"{what} overflows: the multiplier is far too large")
    return value


def constraint(alpha: float, beta: float, gamma: float) -> float:
    """alpha * beta^2 * gamma^2: the factor by which FLOPs grow per unit of phi."""
    return alpha * beta**2 * gamma**2


def check_coefficients(
    alpha: float, beta: float, gamma: float, tolerance: float | None = None
) -> None:
    """alpha, beta, gamma >= 1; with ``tolerance``, |alpha*beta^2*gamma^2 - 2| <= tolerance."""
    for name, v in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if not math.isfinite(v) or v < 1:
            raise EffnetError(f"{name} must be a finite number >= 1, got {v}")
    if tolerance is not None:
        if not (math.isfinite(tolerance) and tolerance >= 0):
            raise EffnetError(f"tolerance must be a finite number >= 0, got {tolerance}")
        c = constraint(alpha, beta, gamma)
        if abs(c - 2.0) > tolerance:
            raise EffnetError(
                f"alpha*beta^2*gamma^2 = {c:.4f} is not within {tolerance} of 2 "
                f"(alpha={alpha}, beta={beta}, gamma={gamma})"
            )


def compound(
    phi: float,
    alpha: float = ALPHA,
    beta: float = BETA,
    gamma: float = GAMMA,
    tolerance: float | None = None,
) -> tuple[float, float, float]:
    """(depth, width, resolution) multipliers alpha^phi, beta^phi, gamma^phi.

    Any real phi works: fractional, and negative for the small proxies a search trains.
    """
    if not math.isfinite(phi):
        raise EffnetError(f"phi must be a finite number, got {phi}")
    check_coefficients(alpha, beta, gamma, tolerance)
    try:
        return alpha**phi, beta**phi, gamma**phi
    except OverflowError:
        raise EffnetError(
            f"phi {phi:g} is far too large: {max(alpha, beta, gamma):g}^{phi:g} overflows"
        ) from None


def scale(
    arch: Architecture,
    depth: float = 1.0,
    width: float = 1.0,
    resolution_mult: float = 1.0,
    name: str | None = None,
    *,
    resolution: Any = None,
) -> Architecture:
    """A new architecture with depth, width and resolution multiplied (rounded as published).

    ``resolution_mult`` is the paper's r (a multiplier); ``arch.resolution`` is in pixels, and
    the old spelling ``resolution=`` for the multiplier is refused with the new name.

    Scaling by (1, 1, 1) is the identity. Multipliers compose in the provenance fields
    ``arch.width`` / ``arch.depth``; channel rounding is applied to the given arch.
    """
    if resolution is not None:
        raise EffnetError(
            f"scale() takes the resolution multiplier as resolution_mult={resolution!r}; "
            "resolution means pixels (arch.replace(resolution=N))"
        )
    for label, v in (("depth", depth), ("width", width), ("resolution", resolution_mult)):
        if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
            raise EffnetError(f"{label} multiplier must be a positive number, got {v}")
    if (depth, width, resolution_mult) == (1.0, 1.0, 1.0) and name is None:
        return arch
    div = arch.divisor

    def channels(c: int, scaled: bool, w: float = width) -> int:
        return round_filters(c, w, div) if scaled and w != 1.0 else c

    stages = tuple(
        replace(
            s,
            out_channels=channels(s.out_channels, s.scale_width),
            layers=round_repeats(s.layers, depth, arch.depth_rounding)
            if s.scale_depth
            else s.layers,
        )
        for s in arch.stages
    )
    head_w = max(1.0, width) if arch.head.only_grow else width
    head = replace(
        arch.head,
        out_channels=channels(arch.head.out_channels, arch.head.scale_width, head_w)
        if arch.head.out_channels
        else 0,
    )
    stem = replace(arch.stem, out_channels=channels(arch.stem.out_channels, arch.stem.scale_width))
    return arch.replace(
        name=name or _scaled_name(arch.name, depth, width, resolution_mult),
        stages=stages,
        stem=stem,
        head=head,
        resolution=round_resolution(arch.resolution, resolution_mult),
        width=arch.width * width,
        depth=arch.depth * depth,
    )


def scale_phi(
    arch: Architecture,
    phi: float,
    alpha: float = ALPHA,
    beta: float = BETA,
    gamma: float = GAMMA,
    tolerance: float | None = None,
) -> Architecture:
    """Compound scaling: ``scale`` with the multipliers of ``compound(phi, ...)``."""
    d, w, r = compound(phi, alpha, beta, gamma, tolerance)
    return scale(arch, depth=d, width=w, resolution_mult=r, name=f"{arch.name}-phi{phi:g}")


def _scaled_name(base: str, depth: float, width: float, resolution: float) -> str:
    parts = [f"{k}{v:.4g}" for k, v in (("d", depth), ("w", width), ("r", resolution)) if v != 1]
    return f"{base}-{'-'.join(parts)}" if parts else base


# -- budget fitting -----------------------------------------------------------------------
@dataclass(frozen=True)
class Fit:
    """The result of fitting a one-parameter family of networks to a cost target."""

    value: float  # the parameter found (phi, or a single multiplier)
    arch: Architecture
    cost: float  # the fitted network's cost (multiply-adds or parameters)
    target: float

    @property
    def relative_error(self) -> float:
        """(cost - target) / target: negative when under budget."""
        return (self.cost - self.target) / self.target


def fit(
    make: Callable[[float], Architecture],
    cost: Callable[[Architecture], float],
    target: float,
    lo: float,
    hi: float,
    mode: str = "below",
    precision: float = 1e-3,
) -> Fit:
    """Find x in [lo, hi] so that ``cost(make(x))`` meets ``target``.

    ``mode="below"``: the largest network whose cost is <= target (a budget);
    ``mode="nearest"``: the network whose cost is closest to target (budget matching).
    Cost must grow with x; rounding makes it a staircase, so the search bisects on the
    step where cost crosses the target and then picks a side.
    """
    if not (math.isfinite(target) and target > 0):
        raise EffnetError(f"budget must be a positive finite number, got {target}")
    if mode not in ("below", "nearest"):
        raise EffnetError(f"fit mode must be 'below' or 'nearest', got {mode!r}")

    def evaluate(x: float) -> Fit | None:
        try:
            a = make(x)
        except EffnetError:
            return None  # e.g. the feature map vanishes at a tiny resolution
        return Fit(x, a, float(cost(a)), float(target))

    low, high = evaluate(lo), evaluate(hi)
    if low is None or low.cost > target:
        smallest = "" if low is None else f" (smallest costs {low.cost:.4g})"
        raise EffnetError(f"no model fits a budget of {target:.4g}{smallest}")
    if high is not None and high.cost <= target:
        return high
    a, b = low, high
    xa, xb = lo, hi
    while xb - xa > precision:
        xm = (xa + xb) / 2
        m = evaluate(xm)
        if m is None:
            xb = xm
            continue
        if m.cost <= target:
            a, xa = m, xm
        else:
            b, xb = m, xm
    if mode == "nearest" and b is not None and abs(b.cost - target) < abs(a.cost - target):
        return b
    return a


def fit_budget(
    arch: Architecture,
    target: float,
    cost: Callable[[Architecture], float],
    alpha: float = ALPHA,
    beta: float = BETA,
    gamma: float = GAMMA,
    mode: str = "below",
    phi_range: tuple[float, float] = (-8.0, 12.0),
) -> Fit:
    """The phi whose compound-scaled ``arch`` is the largest that fits ``target``."""
    check_coefficients(alpha, beta, gamma)
    return fit(
        lambda phi: scale_phi(arch, phi, alpha, beta, gamma),
        cost,
        target,
        *phi_range,
        mode=mode,
    )


def nearest_phi(
    depth: float,
    width: float,
    resolution_mult: float,
    alpha: float = ALPHA,
    beta: float = BETA,
    gamma: float = GAMMA,
) -> float:
    """The phi whose (alpha^phi, beta^phi, gamma^phi) is nearest to the given multipliers,
    in least squares on their logarithms (each dimension counts alike, as a ratio)."""
    check_coefficients(alpha, beta, gamma)
    pairs = [(depth, alpha), (width, beta), (resolution_mult, gamma)]
    for value, _ in pairs:
        if not (math.isfinite(value) and value > 0):
            raise EffnetError(f"multipliers must be positive numbers, got {value}")
    num = sum(math.log(v) * math.log(c) for v, c in pairs)
    den = sum(math.log(c) ** 2 for _, c in pairs)
    if den == 0:
        raise EffnetError("alpha, beta and gamma are all 1: every phi gives the same network")
    return num / den


def formula_rows(
    released: dict[str, tuple[float, float, int, float]],
    base_resolution: int,
    alpha: float = ALPHA,
    beta: float = BETA,
    gamma: float = GAMMA,
) -> list[dict[str, float | str]]:
    """For each released model (name -> width, depth, pixels, dropout) in order, its
    multipliers beside the formula's at phi = its index (B1 -> 1, ...), and the phi its
    multipliers match best: how the released coefficients follow from the formula."""
    rows: list[dict[str, float | str]] = []
    for phi, (name, (width, depth, pixels, _)) in enumerate(released.items()):
        r = pixels / base_resolution
        d_phi, w_phi, r_phi = compound(phi, alpha, beta, gamma)
        rows.append(
            dict(
                model=name,
                phi=phi,
                depth=depth,
                width=width,
                resolution=pixels,
                resolution_mult=r,
                formula_depth=d_phi,
                formula_width=w_phi,
                formula_resolution=base_resolution * r_phi,
                nearest_phi=nearest_phi(depth, width, r, alpha, beta, gamma),
            )  # fmt: skip
        )
    return rows


def effective_multipliers(base: Architecture, scaled: Architecture) -> tuple[float, float, float]:
    """What a scaling did once rounded: (depth, width, resolution) of ``scaled`` over ``base``.

    Depth is the ratio of blocks; width the geometric mean of the stages' channel ratios;
    resolution the ratio of pixels. Rounding layers up and channels to multiples of 8 can
    take these far from the nominal multipliers on small networks (a one-layer stage at
    depth 1.2 becomes two layers), which is what a study's comparison really measures.
    """
    if len(base.stages) != len(scaled.stages):
        raise EffnetError(f"{scaled.name} has other stages than {base.name}: not a scaling of it")
    depth = scaled.num_blocks / base.num_blocks
    ratios = [t.out_channels / b.out_channels for b, t in zip(base.stages, scaled.stages)]
    width = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    return depth, width, scaled.resolution / base.resolution
