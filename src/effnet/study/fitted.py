"""Points of a study with a multiply-add target: Table 7 (one model per method fitted to one
budget) and the compound-scaled family (one model per phi, scaled as the paper scales B0)."""

from __future__ import annotations

from typing import Any

from effnet.arch import Architecture
from effnet.errors import EffnetError
from effnet.scaling import compound, constraint, fit, scale, scale_phi
from effnet.study.point import Point, macs


def budget_points(s: Any, base: Architecture, shape: tuple[int, int]) -> list[Point]:
    """Table 7: the baseline and one model per method, each fitted to the same budget.

    ``effnet.scaling.fit(mode="nearest")`` picks, on each method's staircase of rounded
    architectures, the one whose multiply-adds are closest to the target; a method that
    cannot come within ``tolerance`` (e.g. a budget below the baseline) is an error.
    """

    assert s.budget is not None
    base_macs = macs(base, *shape)
    target = s.budget * base_macs
    alpha, beta, gamma = s.coefficients

    def cost(a: Architecture) -> float:
        return float(macs(a, *shape))

    def one_dim(method: str) -> Any:
        def make(x: float) -> Architecture:
            return scale(base, **{SCALE_ARGUMENT[method]: x})

        prec = 0.004 if method == "resolution" else 0.01
        hi = _bracket(make, cost, target, 2.0)
        return fit(make, cost, target, 1.0, hi, mode="nearest", precision=prec)

    def compound_scaled(phi: float) -> Architecture:
        depth, width, resolution_mult = compound(phi, alpha, beta, gamma)
        return scale(base, depth=depth, width=width, resolution_mult=resolution_mult)

    def paper_balanced(k: float) -> Architecture:
        d, w, r = (m**k for m in PAPER_BALANCE)
        return scale(base, depth=d, width=w, resolution_mult=r)

    out = [Point("table7", "baseline", 1.0, 1.0, 1.0, base, base_macs, target)]
    for method in s.methods:
        try:
            if method == "compound-paper":
                hi = _bracket(paper_balanced, cost, target, 1.0)
                f = fit(paper_balanced, cost, target, 0.0, hi, mode="nearest", precision=0.01)
                mult = tuple(m**f.value for m in PAPER_BALANCE)
            elif method == "compound":
                hi = _bracket(compound_scaled, cost, target, 1.0)
                f = fit(compound_scaled, cost, target, 0.0, hi, mode="nearest", precision=0.01)
                mult = compound(f.value, alpha, beta, gamma)
            else:
                f = one_dim(method)
                mult = _mult_of(method, f.value)
        except EffnetError as e:
            raise EffnetError(f"budget {s.budget:g}x for {method} scaling: {e}") from None
        d, w, r = mult
        arch = f.arch.replace(name=f"{s.name}-{method}-{s.budget:g}x")
        p = Point("table7", method, d, w, r, arch, int(f.cost), target)
        if abs(p.relative_error or 0.0) > s.tolerance:
            raise EffnetError(
                f"budget {s.budget:g}x ({target:,.0f} multiply-adds): no {method}-scaled model "
                f"within {s.tolerance:.0%} (closest costs {f.cost:,.0f}, "
                f"{p.relative_error:+.1%})"
            )
        out.append(p)
    return out


def family_points(s: Any, base: Architecture, shape: tuple[int, int]) -> list[Point]:
    """The compound-scaled family as the paper builds B1..B7: at each phi of ``s.family``
    the baseline scaled by (alpha^phi, beta^phi, gamma^phi) with the study's coefficients,
    no refitting, so the cost lands where rounding puts it (its ``target`` is the nominal
    2^phi x the baseline's multiply-adds; the report shows how far it is)."""

    base_macs = macs(base, *shape)
    alpha, beta, gamma = s.coefficients
    out = []
    for phi in s.family:
        try:
            arch = base if phi == 0 else scale_phi(base, phi, alpha, beta, gamma)
        except EffnetError as e:
            raise EffnetError(f"family phi {phi:g}: {e}") from None
        d, w, r = compound(phi, alpha, beta, gamma)
        arch = arch.replace(name=f"{s.name}-phi{phi:g}")
        target = base_macs * constraint(alpha, beta, gamma) ** phi
        out.append(Point("family", "compound", d, w, r, arch, macs(arch, *shape), target))
    return out


def _bracket(make: Any, cost: Any, target: float, start: float, limit: float = 64.0) -> float:
    """The smallest of start, 2*start, 4*start ... whose model costs at least ``target``.

    Fitting then bisects below it, so no huge model (a 500-block depth-32 net, slow even
    to count on the meta device) is ever built.
    """
    x = start
    while x < limit:
        try:
            if cost(make(x)) >= target:
                return x
        except EffnetError:
            return x
        x *= 2
    return limit


# the compound model of the paper's Table 7 (d = 1.4, w = 1.2, r = 1.3 at about 4.5x B0's
# FLOPs), its balance raised to the power k that meets the study's budget
PAPER_BALANCE = (1.4, 1.2, 1.3)

# a single-dimension method's name -> the scale() argument it sets
SCALE_ARGUMENT = {"depth": "depth", "width": "width", "resolution": "resolution_mult"}


def _mult_of(method: str, value: float) -> tuple[float, float, float]:
    """(depth, width, resolution) multipliers of a single-dimension scaling."""
    return (
        value if method == "depth" else 1.0,
        value if method == "width" else 1.0,
        value if method == "resolution" else 1.0,
    )
