"""A scaling study as data: which baseline, which data, which points, how long each trains.

A :class:`Study` names a baseline and three kinds of experiment from the paper:

- ``sweeps``: single-dimension scaling (Fig 3): lists of width, depth or resolution
  multipliers, each applied alone to the baseline;
- ``fig4_at`` x ``fig4_width``: width sweeps at several fixed (depth, resolution) (Fig 4);
- ``budget``: the budget-matched set of Table 7: the baseline and one model per method
  (depth only, width only, resolution only, compound) fitted to ``budget`` times the
  baseline's multiply-adds, every one within ``tolerance`` of the target; trained at each
  of ``training_budgets`` (multiples of the recipe's epochs: ``[1, 2]`` is the
  convergence check, T and 2T).

:func:`plan` turns it into concrete :class:`Point`\\ s (architectures); the same architecture
reached by two experiments (the baseline is in every sweep) is trained once.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from effnet.arch import Architecture
from effnet.errors import EffnetError
from effnet.record import Record, checked_fields, construct
from effnet.registry import get_arch
from effnet.scaling import PAPER_COEFFICIENTS, compound, fit, scale, scale_phi
from effnet.study.checks import METHODS, SWEEP_KEYS, validate
from effnet.study.data_info import data_shape


@dataclass(frozen=True)
class Study(Record):
    """Everything a study trains, saved as ``study.json`` in the study folder."""

    name: str = "scaling-study"
    baseline: str = "efficientnet_b0"  # model name or architecture JSON path
    baseline_phi: float | None = None  # compound-scale the baseline first (negative: smaller)
    baseline_width: float = 1.0  # then multiply its width ...
    baseline_depth: float = 1.0  # ... and depth (to make a small proxy baseline)
    # architecture fields changed before any scaling, e.g. {"divisor": 4, "depth_rounding":
    # "round", "stem": {"stride": 1}}: rounding and strides sized for a small proxy
    baseline_fields: dict[str, Any] = field(default_factory=dict)
    resolution: int | None = None  # base input resolution in pixels; None: the baseline's
    data: dict[str, Any] = field(default_factory=dict)  # effnet.data.DataSpec fields
    recipe: str = "cpu"  # a named recipe (effnet.train.RECIPES) or a recipe JSON path
    recipe_overrides: dict[str, Any] = field(default_factory=dict)  # e.g. {"epochs": 3}
    seeds: tuple[int, ...] = (0,)  # every point is trained once per seed
    sweeps: dict[str, tuple[float, ...]] = field(default_factory=dict)  # Fig 3
    fig4_at: tuple[tuple[float, float], ...] = ()  # Fig 4: (depth, resolution) pairs ...
    fig4_width: tuple[float, ...] = ()  # ... each swept over these widths
    budget: float | None = 4.0  # Table 7: target multiply-adds / the baseline's; None: skip
    methods: tuple[str, ...] = METHODS  # which Table-7 methods to fit
    coefficients: tuple[float, float, float] = PAPER_COEFFICIENTS  # alpha, beta, gamma
    tolerance: float = 0.05  # every budget-matched model within this of the target
    training_budgets: tuple[float, ...] = (1.0,)  # Table 7 trained at these x recipe epochs

    def __post_init__(self) -> None:
        validate(self)
        if self.baseline_fields:  # a typo there is an error now, not at the first point
            with_fields(get_arch(self.baseline), self.baseline_fields)

    def replace(self, **changes: Any) -> Study:
        return dataclasses.replace(self, **changes)

    def with_budget(
        self,
        seeds: tuple[int, ...] | list[int] | None = None,
        epochs: float | None = None,
        subset: int | None = None,
        training_budgets: tuple[float, ...] | None = None,
    ) -> Study:
        """The same study with other seeds, epochs per run, training images or training
        budgets (None: keep)."""
        changes: dict[str, Any] = {}
        if training_budgets is not None:
            changes["training_budgets"] = tuple(training_budgets)
        if seeds:
            changes["seeds"] = tuple(seeds)
        if epochs is not None:
            changes["recipe_overrides"] = {**self.recipe_overrides, "epochs": epochs}
        if subset is not None:
            changes["data"] = {**self.data, "subset": subset}
        return self.replace(**changes) if changes else self

    KIND: ClassVar[str] = "study"  # JSON in and out: effnet.record.Record

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Study:
        d = checked_fields(cls, data, "study")
        if "sweeps" in d:
            if not isinstance(d["sweeps"], dict):
                raise EffnetError("study: 'sweeps' must be an object like {\"width\": [1, 2]}")
            unknown = [k for k in d["sweeps"] if k not in SWEEP_KEYS]
            if unknown:
                raise EffnetError(
                    f"study: unknown sweep key(s) "
                    f"{', '.join(k if k.isidentifier() else repr(k) for k in unknown)} "
                    f"(known: {', '.join(SWEEP_KEYS)})"
                )
            d["sweeps"] = {k: _floats(v, f"sweeps.{k}") for k, v in d["sweeps"].items()}
        for key in ("seeds", "methods", "fig4_width", "coefficients", "training_budgets"):
            if key in d:
                d[key] = tuple(_as_list(d[key], key))
        if "fig4_at" in d:
            d["fig4_at"] = tuple(tuple(_floats(p, "fig4_at")) for p in _as_list(d["fig4_at"], ""))
        return construct(cls, d, "study")


def _as_list(v: Any, where: str) -> list:
    if not isinstance(v, list | tuple):
        raise EffnetError(f"study: {where} must be a list, got {v!r}")
    return list(v)


def _floats(v: Any, where: str) -> tuple[float, ...]:
    out = []
    for x in _as_list(v, where):
        if isinstance(x, bool) or not isinstance(x, int | float):
            raise EffnetError(f"study: {where} must hold numbers, got {x!r}")
        out.append(float(x))
    return tuple(out)


# -- points ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Point:
    """One network of the study: which experiment line it belongs to and how it was scaled."""

    group: str  # "fig3" | "fig4" | "table7"
    method: str  # the line it is drawn on: width, depth, resolution, compound, baseline, d2-r1.3
    depth: float  # multipliers relative to the study's baseline
    width: float
    resolution_mult: float  # the paper's r; the pixels are arch.resolution
    arch: Architecture
    macs: int  # multiply-adds of one image with the study's head and input channels
    target: float | None = None  # Table 7: the multiply-add target it was fitted to
    same_as: str | None = None  # key of an earlier point with the identical network

    @property
    def key(self) -> str:
        """Run folder name: the same architecture gets the same key wherever it appears."""
        return self.same_as or f"d{self.depth:.4g}-w{self.width:.4g}-r{self.arch.resolution}"

    @property
    def relative_error(self) -> float | None:
        return None if self.target is None else (self.macs - self.target) / self.target

    def to_dict(self) -> dict[str, Any]:
        return dict(
            key=self.key, group=self.group, method=self.method, depth=self.depth,
            width=self.width, resolution_mult=self.resolution_mult,
            resolution=self.arch.resolution, macs=self.macs, target=self.target,
            relative_error=self.relative_error, model=self.arch.name,
        )  # fmt: skip


@functools.lru_cache(maxsize=4096)
def macs(arch: Architecture, num_classes: int = 1000, in_chans: int = 3) -> int:
    """Multiply-adds of one image with the study's head (see ``effnet.profile``)."""
    # torch: this module's data and checks load without it
    from effnet.profile import arch_macs

    return arch_macs(arch, num_classes, in_chans)


def baseline_arch(s: Study) -> Architecture:
    """The study's baseline (see :func:`proxy_baseline`)."""
    return proxy_baseline(s, f"{s.name}-baseline")


class ProxyFields(Protocol):
    """The fields a Study and a SearchConfig share to describe their small proxy baseline."""

    baseline: str
    baseline_phi: float | None
    baseline_width: float
    baseline_depth: float
    resolution: int | None
    baseline_fields: dict[str, Any]
    coefficients: tuple[float, float, float]


def proxy_baseline(cfg: ProxyFields, name: str) -> Architecture:
    """``cfg.baseline`` (a named model or architecture file) with ``baseline_fields``
    changed (they hold for every later scaling), optionally shrunk by ``baseline_phi`` and
    then by ``baseline_width`` / ``baseline_depth``, at ``resolution`` px; renamed
    ``name``, with its multipliers reset to 1."""

    arch = with_fields(get_arch(cfg.baseline), cfg.baseline_fields)
    if cfg.baseline_phi is not None:
        arch = scale_phi(arch, cfg.baseline_phi, *cfg.coefficients)
    if (cfg.baseline_width, cfg.baseline_depth) != (1.0, 1.0):
        arch = scale(arch, depth=cfg.baseline_depth, width=cfg.baseline_width)
    if cfg.resolution is not None:
        arch = arch.replace(resolution=cfg.resolution)
    return arch.replace(name=name, width=1.0, depth=1.0)


def with_fields(arch: Architecture, fields: dict[str, Any]) -> Architecture:
    """``arch`` with some of its JSON fields changed (objects merge one level deep)."""
    if not fields:
        return arch
    data = json.loads(arch.to_json())
    for key, value in fields.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    try:
        return Architecture.from_dict(data)
    except EffnetError as e:
        raise EffnetError(f"baseline_fields: {e}") from None


def plan(s: Study) -> list[Point]:
    """Every point of the study, in training order: Table 7 first, then Fig 3, then Fig 4."""

    base = baseline_arch(s)
    shape = data_shape(s.data)

    def point(group: str, method: str, d: float, w: float, r: float) -> Point:
        arch = scale(base, depth=d, width=w, resolution_mult=r, name=f"{s.name}-d{d:.4g}-w{w:.4g}")
        arch = arch.replace(name=f"{s.name}-d{d:.4g}-w{w:.4g}-r{arch.resolution}")
        return Point(group, method, d, w, r, arch, macs(arch, *shape))

    points: list[Point] = []
    if s.budget is not None:
        points += budget_points(s, base, shape)
    for key in SWEEP_KEYS:
        for v in s.sweeps.get(key, ()):
            mult = {"depth": 1.0, "width": 1.0, "resolution": 1.0, key: v}
            points.append(point("fig3", key, mult["depth"], mult["width"], mult["resolution"]))
    for d, r in s.fig4_at:
        for w in s.fig4_width:
            points.append(point("fig4", f"d={d:g}, r={r:g}", d, w, r))
    return _share_identical(points)


def _share_identical(points: list[Point]) -> list[Point]:
    """Points whose networks are identical (depth 3.99 and 4 round to the same layers)
    share the first one's run folder, so each network is trained once per seed."""
    first: dict[str, str] = {}
    out = []
    for p in points:
        # the recorded multipliers are provenance, not structure
        signature = p.arch.replace(name="", width=1.0, depth=1.0).to_json()
        key = first.setdefault(signature, p.key)
        out.append(p if key == p.key else dataclasses.replace(p, same_as=key))
    return out


def budget_points(s: Study, base: Architecture, shape: tuple[int, int]) -> list[Point]:
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


def unique_runs(points: list[Point]) -> list[Point]:
    """One point per distinct key, in first-seen order (each is trained once per seed)."""
    seen: dict[str, Point] = {}
    for p in points:
        seen.setdefault(p.key, p)
    return list(seen.values())
