"""The alpha, beta, gamma search as data: its config, the grid, one candidate's network
and how one candidate is trained and scored (step 1 of compound scaling, section 3.3).

The grid holds every (alpha, beta, gamma) >= 1 on a ``step`` lattice with
alpha * beta^2 * gamma^2 within ``tolerance`` of 2. Each candidate scales the baseline by
(alpha^phi, beta^phi, gamma^phi), is trained with ``effnet.train.train`` and ranked by
minival top-1. Running the search (storage, workers, report) is :mod:`effnet.study.search`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from effnet.errors import EffnetError
from effnet.record import Record, check_number_fields, checked_fields, construct
from effnet.registry import get_arch
from effnet.rundir import safe_name
from effnet.scaling import PAPER_COEFFICIENTS, check_coefficients, compound, constraint, scale
from effnet.study.data_info import data_shape
from effnet.study.presets import quick
from effnet.study.study import proxy_baseline

PAPER = PAPER_COEFFICIENTS  # the paper's grid-search result for B0
COST_MODES = ("measured", "nominal")


@dataclass(frozen=True)
class SearchConfig(Record):
    """What the coefficient search trains; stored in the Optuna study so workers agree."""

    name: str = "coefficients"  # the Optuna study name
    baseline: str = "efficientnet_b0"  # model name or architecture JSON path
    baseline_phi: float | None = None  # shrink the baseline into a proxy first ...
    baseline_width: float = 1.0
    baseline_depth: float = 1.0
    resolution: int | None = None  # base resolution of the proxy (px)
    baseline_fields: dict[str, Any] = field(default_factory=dict)  # as Study.baseline_fields
    data: dict[str, Any] = field(default_factory=dict)  # effnet.data.DataSpec fields
    recipe: str = "cpu"
    recipe_overrides: dict[str, Any] = field(default_factory=lambda: {"schedule": "step"})
    phi: float = 1.0  # candidates are the baseline scaled by alpha^phi, beta^phi, gamma^phi
    # "measured": each candidate's phi is refitted so its counted multiply-adds are the
    # nearest to 2^phi x the baseline's (candidates compared at equal cost); "nominal": the
    # paper's alpha^phi, beta^phi, gamma^phi as is (after rounding, 1.9x to 4.2x on the quick
    # proxy)
    cost: str = "measured"
    step: float = 0.05  # grid spacing of alpha, beta, gamma
    tolerance: float = 0.1  # |alpha*beta^2*gamma^2 - 2| <= tolerance
    prune: bool = True  # prune the bottom quartile after the first rung
    first_rung: float | None = None  # epochs before the pruning check; None: a third
    max_retries: int = 2  # re-runs of a failed trial before the candidate is given up
    seed: int = 0
    coefficients: tuple[float, float, float] = PAPER  # only to build a phi-scaled proxy

    def __post_init__(self) -> None:
        check_number_fields(self, "search")
        if not 0 < self.step <= 0.5:
            raise EffnetError(f"search step must be in (0, 0.5], got {self.step}")
        axis = grid_axis_points(self.step, self.tolerance)
        if axis > MAX_AXIS_POINTS:
            raise EffnetError(
                f"search step {self.step:g} gives {axis} values per coefficient "
                f"({axis**3:.3g} lattice points, each candidate a training run); "
                f"use a step >= {(1 + self.tolerance) / (MAX_AXIS_POINTS - 1):.2g}"
            )
        if not isinstance(self.baseline_fields, dict):
            raise EffnetError(f"baseline_fields must be an object, got {self.baseline_fields!r}")
        if not 0 < self.tolerance <= 1:
            raise EffnetError(f"search tolerance must be in (0, 1], got {self.tolerance}")
        if not (math.isfinite(self.phi) and self.phi > 0):
            raise EffnetError(f"search phi must be positive, got {self.phi}")
        if self.resolution is not None and not self.resolution >= 8:
            raise EffnetError(f"search resolution must be >= 8 pixels, got {self.resolution}")
        if self.max_retries < 0:
            raise EffnetError("search max_retries must be >= 0")
        for v in (self.baseline_width, self.baseline_depth):
            if not v > 0:
                raise EffnetError(f"search baseline multipliers must be positive, got {v}")
        if self.cost not in COST_MODES:
            raise EffnetError(
                f"search cost must be one of {', '.join(COST_MODES)}, got {self.cost!r}"
            )
        if not grid(self.step, self.tolerance):
            raise EffnetError(f"no candidate on a {self.step} grid within {self.tolerance} of 2")

    KIND: ClassVar[str] = "search config"  # JSON in and out: effnet.record.Record

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchConfig:
        d = checked_fields(cls, data, cls.KIND)
        if "coefficients" in d:
            d["coefficients"] = tuple(d["coefficients"])
        return construct(cls, d, cls.KIND)


def validate(cfg: SearchConfig) -> None:
    """Find what every trial would fail on before any runs and before a folder is made:
    the baseline, each candidate's architecture, the data spec and the recipe."""
    # torch: this module's data and checks load without it
    from effnet.data import DataSpec
    from effnet.train.recipe import Recipe, resolve

    safe_name(cfg.name, "search name")
    safe_name(get_arch(cfg.baseline).name, "search baseline's architecture name")
    data = DataSpec.from_dict(cfg.data)
    if data.minival < 1:
        raise EffnetError("search data minival must be >= 1 image: candidates are ranked on it")
    Recipe.from_dict({**resolve(cfg.recipe).to_dict(), **cfg.recipe_overrides})
    for a, b, g in grid(cfg.step, cfg.tolerance):
        candidate_arch(cfg, a, b, g)


def quick_search() -> SearchConfig:
    """The `--quick` proxy: the quick study's baseline, data and budget (B0 at 0.35 width,
    32 px, two epochs on 3,000 Fashion-MNIST images per candidate) on a 0.1 grid (22
    candidates), with the step schedule that makes early pruning fair."""

    study = quick()
    return SearchConfig(
        name="quick",
        baseline=study.baseline,
        baseline_width=study.baseline_width,
        resolution=study.resolution,
        baseline_fields=dict(study.baseline_fields),
        data=dict(study.data),
        recipe=study.recipe,
        recipe_overrides={**study.recipe_overrides, "schedule": "step"},
        step=0.1,
        tolerance=0.1,
    )


# -- the grid -------------------------------------------------------------------------------
MAX_AXIS_POINTS = 201  # values per coefficient: 8e6 lattice points are enumerated in seconds


def grid_axis_points(step: float, tolerance: float) -> int:
    """How many values of one coefficient the lattice holds: 1, 1 + step, ... up to 2 + tol."""
    return int((2 + tolerance - 1) / step + 1e-9) + 1


def grid(step: float, tolerance: float) -> list[tuple[float, float, float]]:
    """Every (alpha, beta, gamma) >= 1 on the lattice with |alpha*beta^2*gamma^2 - 2| <= tol."""
    n = grid_axis_points(step, tolerance) - 1
    values = [round(1 + i * step, 6) for i in range(n + 1)]
    out = []
    for a in values:
        for b in values:
            for g in values:
                if abs(constraint(a, b, g) - 2) <= tolerance + 1e-9:
                    out.append((a, b, g))
    return out


def candidate_id(a: float, b: float, g: float) -> str:
    return f"a{a:g}-b{b:g}-g{g:g}"


def parse_candidate(cid: str) -> tuple[float, float, float]:
    a, b, g = (float(p[1:]) for p in cid.split("-"))
    return a, b, g


# -- one candidate --------------------------------------------------------------------------
def proxy(cfg: SearchConfig) -> Any:

    return proxy_baseline(cfg, f"{cfg.name}-proxy")


def candidate_arch(cfg: SearchConfig, a: float, b: float, g: float) -> Any:

    depth, width, resolution_mult = compound(cfg.phi, a, b, g)
    name = candidate_id(a, b, g)
    return scale(proxy(cfg), depth=depth, width=width, resolution_mult=resolution_mult, name=name)


@dataclass(frozen=True)
class Candidate:
    """One candidate's network: the phi it was scaled by and its cost against the target."""

    arch: Any
    phi: float
    macs: int  # with the data's head and input channels
    target: float  # 2^phi x the baseline's multiply-adds (the search's phi)

    @property
    def cost_ratio(self) -> float:
        return self.macs / self.target


def fitted_candidate(
    cfg: SearchConfig, a: float, b: float, g: float, shape: tuple[int, int] = (1000, 3)
) -> Candidate:
    """The candidate's network at ``cfg.phi`` ("nominal") or at the phi whose counted
    multiply-adds come nearest to 2^phi x the baseline's ("measured", the default): rounding
    of layers, channels and pixels makes the nominal cost of candidates differ by 2x, so the
    search would otherwise rank cost as much as balance."""
    from effnet.scaling import fit
    from effnet.study.study import macs

    base = proxy(cfg)
    target = macs(base, *shape) * 2.0**cfg.phi

    def make(phi: float) -> Any:
        d, w, r = compound(phi, a, b, g)
        return scale(base, depth=d, width=w, resolution_mult=r, name=candidate_id(a, b, g))

    if cfg.cost == "nominal":
        arch = make(cfg.phi)
        return Candidate(arch, cfg.phi, macs(arch, *shape), target)
    f = fit(make, lambda x: float(macs(x, *shape)), target, 0.0, cfg.phi * 2,
            mode="nearest", precision=0.02)  # fmt: skip
    return Candidate(f.arch, round(f.value, 4), int(f.cost), target)


def rungs(cfg: SearchConfig, epochs: float, schedule: str) -> list[float]:
    """Epoch counts at which a candidate is checked; extending a run by resuming it keeps
    its learning-rate schedule only when the schedule does not depend on the run length."""
    if not cfg.prune or schedule != "step" or epochs < 2:
        return [epochs]
    first = cfg.first_rung or max(1.0, round(epochs / 3, 1))
    return [first, epochs] if first < epochs else [epochs]


def evaluate_candidate(cfg: SearchConfig, trial: Any, cid: str, out: Path, train_fn: Any) -> float:
    """Train one candidate (resuming its run folder if a crashed attempt left one)."""
    # Optuna loads only when a search runs
    import optuna

    # torch: this module's data and checks load without it
    from effnet.data import DataSpec
    from effnet.train import runfolder
    from effnet.train.recipe import resolve

    a, b, g = parse_candidate(cid)
    cand = fitted_candidate(cfg, a, b, g, data_shape(cfg.data))
    arch = cand.arch
    trial.set_user_attr("phi", cand.phi)
    trial.set_user_attr("cost_ratio", round(cand.cost_ratio, 4))
    trial.set_user_attr("network", arch.replace(name="", width=1.0, depth=1.0).to_json())
    recipe = resolve(cfg.recipe).replace(**cfg.recipe_overrides).replace(seed=cfg.seed)
    data = DataSpec.from_dict(cfg.data)
    run_dir = out / "trials" / cid
    steps = rungs(cfg, recipe.epochs, recipe.schedule)
    metrics: dict[str, Any] = {}
    for i, epochs in enumerate(steps):
        result = runfolder.train_or_resume(
            train_fn, arch, data, recipe.replace(epochs=epochs), run_dir
        )
        metrics = dict(result.metrics)
        trial.report(metrics["minival_top1"], step=i)
        if i < len(steps) - 1 and trial.should_prune():
            _record(trial, metrics, epochs)
            raise optuna.TrialPruned(f"{cid}: minival {metrics['minival_top1']:.2f}%")
    _record(trial, metrics, steps[-1])
    return float(metrics["minival_top1"])


def _record(trial: Any, metrics: dict[str, Any], epochs: float) -> None:
    for k in ("test_top1", "params", "macs", "resolution", "train_time_s"):
        if metrics.get(k) is not None:
            trial.set_user_attr(k, metrics[k])
    trial.set_user_attr("epochs", epochs)


def searched_coefficients(path: str | Path) -> tuple[float, float, float]:
    """alpha, beta, gamma from a ``search-coefficients`` ``best.json`` (its ``best`` entry),
    checked as any coefficients are; a one-line error for anything else."""
    import json

    p = Path(path)
    try:
        best = json.loads(p.read_text())["best"]
        coef = (float(best["alpha"]), float(best["beta"]), float(best["gamma"]))
    except FileNotFoundError:
        raise EffnetError(f"no such coefficients file: {p}") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise EffnetError(
            f"{p} is not a search-coefficients best.json (no best alpha, beta, gamma)"
        ) from None
    check_coefficients(*coef)
    return coef
