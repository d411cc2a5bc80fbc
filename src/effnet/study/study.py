"""A scaling study as data: which baseline, which data, which points, how long each trains.

A :class:`Study` names a baseline and three kinds of experiment from the paper:

- ``sweeps``: single-dimension scaling (Fig 3): lists of width, depth or resolution
  multipliers, each applied alone to the baseline;
- ``fig4_at`` x ``fig4_width``: width sweeps at several fixed (depth, resolution) (Fig 4);
- ``budget``: the budget-matched set of Table 7: the baseline and one model per method
  (depth only, width only, resolution only, compound) fitted to ``budget`` times the
  baseline's multiply-adds, every one within ``tolerance`` of the target; trained at each
  of ``epoch_multiples`` (multiples of the recipe's epochs: ``[1, 2]`` is the
  convergence check, T and 2T);
- ``family``: the compound-scaled family (Fig 1 / Fig 5): the baseline scaled by
  (alpha, beta, gamma)^phi at each phi, as B1..B7 are; trained at each of
  ``epoch_multiples`` like Table 7.

:func:`plan` turns it into concrete :class:`Point`\\ s (architectures); the same architecture
reached by two experiments (the baseline is in every sweep) is trained once.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from effnet.arch import Architecture
from effnet.errors import EffnetError
from effnet.record import Record, checked_fields, construct
from effnet.registry import get_arch
from effnet.scaling import PAPER_COEFFICIENTS, scale, scale_phi
from effnet.study.checks import METHODS, SWEEP_KEYS, validate
from effnet.study.data_info import data_shape
from effnet.study.fitted import budget_points, family_points
from effnet.study.point import Point, macs


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
    epoch_multiples: tuple[float, ...] = (1.0,)  # Table 7 trained at these x recipe epochs
    family: tuple[float, ...] = ()  # phi values of the compound-scaled family (Fig 1 / 5)

    def __post_init__(self) -> None:
        validate(self)
        if self.baseline_fields:  # a typo there is an error now, not at the first point
            with_fields(get_arch(self.baseline), self.baseline_fields)

    def replace(self, **changes: Any) -> Study:
        return dataclasses.replace(self, **changes)

    def with_training(
        self,
        seeds: tuple[int, ...] | list[int] | None = None,
        epochs: float | None = None,
        subset: int | None = None,
        epoch_multiples: tuple[float, ...] | None = None,
    ) -> Study:
        """The same study with other seeds, epochs per run, training images or epoch
        multiples (None: keep)."""
        changes: dict[str, Any] = {}
        if epoch_multiples is not None:
            changes["epoch_multiples"] = tuple(epoch_multiples)
        if seeds:
            changes["seeds"] = tuple(seeds)
        if epochs is not None:
            changes["recipe_overrides"] = {**self.recipe_overrides, "epochs": epochs}
        if subset is not None:
            changes["data"] = {**self.data, "subset": subset}
        return self.replace(**changes) if changes else self

    def training_recipe(self) -> Any:
        """The recipe every run of the study trains with (before its seed and length)."""
        from effnet.train.recipe import resolve

        return resolve(self.recipe).replace(**self.recipe_overrides)

    def with_budget(self, *args: Any, training_budgets: Any = None, **kw: Any) -> Study:
        """The old name of :meth:`with_training` (``training_budgets``: ``epoch_multiples``),
        accepted for one release."""
        import warnings

        warnings.warn("Study.with_budget is now Study.with_training (training_budgets= is "
                      "epoch_multiples=)", DeprecationWarning, stacklevel=2)  # fmt: skip
        if training_budgets is not None:
            kw["epoch_multiples"] = training_budgets
        return self.with_training(*args, **kw)

    KIND: ClassVar[str] = "study"  # JSON in and out: effnet.record.Record
    RENAMED: ClassVar[dict[str, str]] = {"training_budgets": "epoch_multiples"}

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
        for key in ("seeds", "methods", "fig4_width", "coefficients", "epoch_multiples",
                    "family"):  # fmt: skip
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
    """Every point of the study, in training order: Table 7 first, then the family, then
    Fig 3, then Fig 4."""

    base = baseline_arch(s)
    shape = data_shape(s.data)

    def point(group: str, method: str, d: float, w: float, r: float) -> Point:
        arch = scale(base, depth=d, width=w, resolution_mult=r, name=f"{s.name}-d{d:.4g}-w{w:.4g}")
        arch = arch.replace(name=f"{s.name}-d{d:.4g}-w{w:.4g}-r{arch.resolution}")
        return Point(group, method, d, w, r, arch, macs(arch, *shape))

    points: list[Point] = []
    if s.budget is not None:
        points += budget_points(s, base, shape)
    points += family_points(s, base, shape)
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


def unique_runs(points: list[Point]) -> list[Point]:
    """One point per distinct key, in first-seen order (each is trained once per seed)."""
    seen: dict[str, Point] = {}
    for p in points:
        seen.setdefault(p.key, p)
    return list(seen.values())
