"""Did a baseline earn its place? Several baselines, each scaled into the same family.

A :class:`BaselineComparison` names baselines (a searched one, B0's proxy, MobileNetV2's
...) and trains each, with one recipe, one data split and the same seeds, at the same
phi values of compound scaling (the paper's Fig 1 / Fig 5 for networks of your own). The
other baselines' widths are first fitted so that at phi = 0 each costs the reference's
multiply-adds (``match_macs``): the comparison is at equal cost, then each family is
scaled as the paper scales B0.

Each baseline is one :class:`effnet.study.Study` (``family`` = the phis, no Table 7) in
``OUT/<label>/``, so a comparison resumes, reports and fails exactly as a study does::

    comparison.json       the comparison (what was asked)
    <label>/              one study folder per baseline (study.json, runs/, report.md ...)
    results.json, results.csv, compare.png, report.md

The report pairs every baseline with the reference seed by seed at each phi
(:func:`effnet.study.stats.compare`): mean difference, 95% t-interval and the verdict.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from effnet.errors import EffnetError
from effnet.record import Record, checked_fields, construct
from effnet.rundir import ToolFolder, safe_name
from effnet.scaling import PAPER_COEFFICIENTS, fit
from effnet.study.data_info import data_shape
from effnet.study.study import Study, macs, proxy_baseline

# the fields of a Study that describe its baseline (what each entry of ``baselines`` holds)
BASELINE_FIELDS = (
    "baseline", "baseline_phi", "baseline_width", "baseline_depth", "baseline_fields",
    "resolution",
)  # fmt: skip


@dataclass(frozen=True)
class BaselineComparison(Record):
    """Baselines trained and compound-scaled alike; see the module docstring."""

    name: str = "baselines"
    # label -> the Study fields of one baseline, e.g. {"baseline": "efficientnet_b0",
    # "baseline_width": 0.35, "baseline_fields": {"divisor": 4}, "resolution": 16}
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)
    reference: str | None = None  # the label the others are measured against (None: first)
    match_macs: bool = True  # fit the others' baseline_width to the reference's cost
    family: tuple[float, ...] = (0.0, 1.0, 2.0)  # phi values every baseline is scaled to
    coefficients: tuple[float, float, float] = PAPER_COEFFICIENTS
    data: dict[str, Any] = field(default_factory=dict)  # effnet.data.DataSpec fields
    recipe: str = "cpu"
    recipe_overrides: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0, 1, 2)
    epoch_multiples: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        safe_name(self.name, "comparison name")
        if not isinstance(self.baselines, dict) or len(self.baselines) < 2:
            raise EffnetError("a comparison needs at least two baselines (label -> fields)")
        for label, spec in self.baselines.items():
            safe_name(label, "baseline label")
            if not isinstance(spec, dict) or "baseline" not in spec:
                raise EffnetError(f'baseline {label!r}: give at least {{"baseline": NAME}}')
            unknown = sorted(set(spec) - set(BASELINE_FIELDS))
            if unknown:
                raise EffnetError(
                    f"baseline {label!r}: unknown field(s) {', '.join(unknown)} "
                    f"(known: {', '.join(BASELINE_FIELDS)})"
                )
        if self.reference is not None and self.reference not in self.baselines:
            raise EffnetError(
                f"reference {self.reference!r} is not one of the baselines "
                f"({', '.join(self.baselines)})"
            )
        if not self.family:
            raise EffnetError("a comparison needs at least one phi in family")

    @property
    def reference_label(self) -> str:
        return self.reference or next(iter(self.baselines))

    KIND: ClassVar[str] = "baseline comparison"
    RENAMED: ClassVar[dict[str, str]] = {"training_budgets": "epoch_multiples"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BaselineComparison:
        d = checked_fields(cls, data, cls.KIND)
        for key in ("family", "coefficients", "seeds", "epoch_multiples"):
            if key in d:
                if not isinstance(d[key], list | tuple):
                    raise EffnetError(f"{cls.KIND}: {key} must be a list, got {d[key]!r}")
                d[key] = tuple(d[key])
        return construct(cls, d, cls.KIND)


def study_of(cfg: BaselineComparison, label: str, **changes: Any) -> Study:
    """The study that trains one baseline's family (validated as any study is, and its
    baseline built)."""
    spec = {**cfg.baselines[label], **changes}
    try:
        study = Study(
            name=f"{cfg.name}-{label}", data=cfg.data, recipe=cfg.recipe,
            recipe_overrides=cfg.recipe_overrides, seeds=cfg.seeds, budget=None,
            family=cfg.family, coefficients=cfg.coefficients,
            epoch_multiples=cfg.epoch_multiples, **spec,
        )  # fmt: skip
        proxy_baseline(study, label)
        return study
    except EffnetError as e:
        raise EffnetError(f"baseline {label!r}: {e}") from None


def studies(cfg: BaselineComparison) -> dict[str, Study]:
    """One study per baseline; with ``match_macs`` every other baseline's width is fitted
    (nearest multiply-adds on its staircase of rounded widths) to the reference's cost."""
    shape = data_shape(cfg.data)
    ref = study_of(cfg, cfg.reference_label)
    target = float(macs(proxy_baseline(ref, "reference"), *shape))
    out = {}
    for label in cfg.baselines:
        s = ref if label == cfg.reference_label else study_of(cfg, label)
        if cfg.match_macs and label != cfg.reference_label:
            s = s.replace(baseline_width=_matched_width(s, target, shape, label))
        out[label] = s
    return out


def _matched_width(s: Study, target: float, shape: tuple[int, int], label: str) -> float:
    def make(width: float) -> Any:
        return proxy_baseline(s.replace(baseline_width=width), label)

    def cost(arch: Any) -> float:
        return float(macs(arch, *shape))

    w0 = s.baseline_width
    try:
        found = fit(make, cost, target, w0 / 8, w0 * 4, mode="nearest", precision=1e-3)
    except EffnetError as e:
        msg = f"baseline {label!r}: no width matches the reference's cost: {e}"
        raise EffnetError(msg) from None
    return found.value  # the width that built the matched network


@dataclass(frozen=True)
class ComparisonResult:
    folder: Path
    studies: dict[str, Study]
    rows: dict[str, list[dict[str, Any]]]  # label -> the study's result rows
    wall_time_s: float


def run_comparison(
    cfg: BaselineComparison | None,
    out: str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    train_fn: Any = None,
) -> ComparisonResult:
    """Train every baseline's family into ``out`` (one study each), then the report."""
    from effnet.study.compare_report import write_comparison_report
    from effnet.study.runner import run_study

    out = Path(out)
    t0 = time.perf_counter()
    cfg = _to_run(out, cfg, resume)
    plan = studies(cfg)  # every study validated (and widths fitted) before a folder is made
    folder = ToolFolder(out, "comparison")
    if resume and (out / "comparison.json").is_file():
        folder.adopt()
    else:
        folder.claim(force, f"{out} already exists (pass --resume to continue it, --force to "
                            "start over)")  # fmt: skip
    try:
        cfg.save(out / "comparison.json")
        rows = {}
        for label, study in plan.items():
            (log or print)(f"baseline {label}: study {study.name} in {out / label}")
            r = run_study(study, out / label, resume=True, progress=progress, log=log,
                          train_fn=train_fn)  # fmt: skip
            rows[label] = r.rows
        write_comparison_report(out, cfg, plan, rows)
    finally:
        folder.unlock()
    return ComparisonResult(out, plan, rows, time.perf_counter() - t0)


def _to_run(out: Path, cfg: BaselineComparison | None, resume: bool) -> BaselineComparison:
    saved = out / "comparison.json"
    if resume and saved.is_file():
        old = BaselineComparison.load(saved)
        if cfg is not None and cfg != old:
            raise EffnetError(
                f"{out} holds a different comparison; resume it without a config, or pass --force"
            )
        return old
    if cfg is None:
        raise EffnetError(f"cannot resume: {out} has no comparison.json")
    return cfg


def with_seeds(cfg: BaselineComparison, seeds: tuple[int, ...] | None) -> BaselineComparison:
    return cfg if seeds is None else dataclasses.replace(cfg, seeds=tuple(seeds))
