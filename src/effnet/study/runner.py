"""Run a study: every point x seed through ``effnet.train.train``, one run folder each.

Study folder::

    study.json            the Study (what was asked)
    plan.json             every point: multipliers, resolution, multiply-adds, off-budget error
    runs/<key>/seed<N>/   one training run folder per distinct architecture and seed
    runs/<key>/x2/seed<N>/  the same at 2x the recipe's epochs (``epoch_multiples``)
    results.csv / .json   one row per finished run (written after every run)
    fig3.png, fig4.png, table7.png, report.md

A run folder with ``summary.json`` is finished and never retrained; one without it (the
study was interrupted) is resumed from its last checkpoint. The folder is locked while a
study runs in it; ``force`` replaces only a folder effnet made (``effnet.rundir``), and only
after the new study has validated.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from effnet.data import DataSpec
from effnet.errors import EffnetError
from effnet.io import atomic_write_text
from effnet.progress import Display
from effnet.rundir import ToolFolder, safe_name
from effnet.scaling import effective_multipliers
from effnet.study.report import write_report
from effnet.study.study import Point, Study, plan, unique_runs
from effnet.train import runfolder, train

TrainFn = Callable[..., Any]  # effnet.train.train's signature


@dataclass(frozen=True)
class StudyResult:
    folder: Path
    rows: list[dict[str, Any]]  # one per finished run
    trained: int  # runs trained (or resumed) by this call; the rest were already finished
    wall_time_s: float


def study_to_run(out: Path, study: Study | None, resume: bool) -> Study:
    """The given study, or on resume the one saved in ``out`` (which a given one must
    equal). Reads only: nothing in ``out`` changes before the study has validated."""
    saved = out / "study.json"
    if resume and saved.is_file():
        old = Study.load(saved)
        if study is not None and study != old:
            raise EffnetError(
                f"{out} holds a different study; resume it without a config, or pass --force"
            )
        study = old
    if study is None:
        if resume:
            kind = (ToolFolder(out, "study").marker() or {}).get("kind")
            what = f" (it is effnet's {kind} folder, not a study)" if kind else ""
            raise EffnetError(f"cannot resume: {out} has no study.json{what}")
        raise EffnetError("no study given (a config file, --quick, or --resume DIR)")
    safe_name(study.name, "study name")
    return study


def open_folder(out: Path, resume: bool, force: bool) -> ToolFolder:
    """Lock the study folder: an existing study to resume, or a new one. ``force`` replaces
    only a folder effnet made as a study folder; any other folder is never touched."""
    folder = ToolFolder(out, "study")
    if resume and (out / "study.json").is_file():
        folder.adopt()
        return folder
    if resume and folder.has_content():
        kind = (folder.marker() or {}).get("kind")
        what = f"effnet's {kind} folder" if kind else "a folder"
        raise EffnetError(
            f"{out} is {what}, not a study (no study.json): nothing to resume there; give the "
            "study's --out folder"
        )
    exists = (
        f"study folder {out} already exists (pass --resume to continue it, --force to start over)"
    )
    folder.claim(force, exists)
    return folder


def default_train_fn() -> TrainFn:
    """``effnet.train.train``, or a test double named by ``EFFNET_TRAIN_FN=module:function``."""

    spec = os.environ.get("EFFNET_TRAIN_FN")
    if spec:
        module, _, attr = spec.partition(":")
        return getattr(importlib.import_module(module), attr)

    return train


def run_study(
    study: Study | None,
    out: str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    train_fn: TrainFn | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> StudyResult:
    """Train every point of ``study`` for every seed into ``out``, then write the report."""

    out = Path(out)
    study = study_to_run(out, study, resume)
    train_fn = train_fn or default_train_fn()
    t0 = time.perf_counter()
    points = plan(study)
    recipe = study.training_recipe()
    data = DataSpec.from_dict(study.data)
    folder = open_folder(out, resume, force)  # only once the study has validated
    try:
        return _run_locked(out, study, points, recipe, data, train_fn, progress, log, t0)
    finally:
        folder.unlock()


def _run_locked(
    out: Path,
    study: Study,
    points: list[Point],
    recipe: Any,
    data: Any,
    train_fn: TrainFn,
    progress: bool,
    log: Callable[[str], None] | None,
    t0: float,
) -> StudyResult:

    study.save(out / "study.json")
    atomic_write_text(out / "plan.json", json.dumps([p.to_dict() for p in points], indent=2))
    jobs = study_jobs(study, points)
    display = Display(
        [p.macs * b for p, _, b in jobs], title=f"study {study.name}",
        live=None if progress else False,
        every_s=30.0 if progress else math.inf,
    )  # fmt: skip
    say = log or display.say
    try:
        rows, trained = _train_all(out, study, points, jobs, data, recipe, train_fn, display, say)
    finally:
        display.close()
    write_report(out, study, points, rows, final=True)
    wall = time.perf_counter() - t0
    say(f"study {study.name}: {len(rows)} runs ({trained} trained now) in {wall:.0f} s")
    return StudyResult(out, rows, trained, wall)


def _train_all(
    out: Path,
    study: Study,
    points: list[Point],
    jobs: list[Job],
    data: Any,
    recipe: Any,
    train_fn: TrainFn,
    display: Display,
    say: Callable[[str], None],
) -> tuple[list[dict[str, Any]], int]:
    """Train (or pick up) every job in order, reporting after each; (rows, runs trained)."""

    which = " and ".join(n for n, on in (("Table 7", study.budget is not None),
                                         ("the family", bool(study.family))) if on)  # fmt: skip
    multiples = "" if len(study.epoch_multiples) == 1 or not which else (
        f", {which} also at {', '.join(f'{b:g}x' for b in study.epoch_multiples[1:])} the epochs"
    )  # fmt: skip
    say(f"study {study.name}: {len(jobs)} runs ({len(unique_runs(points))} models x "
        f"{len(study.seeds)} seeds{multiples}) in {out}")  # fmt: skip
    rows: list[dict[str, Any]] = []
    trained = 0
    for i, (point, seed, multiple) in enumerate(jobs):
        run_dir = out / "runs" / run_path(point.key, seed, multiple)
        summary = run_dir / runfolder.SUMMARY
        name = f"{point.key}{'' if multiple == 1.0 else f' x{multiple:g}'} seed {seed}"
        tag = f"[{i + 1}/{len(jobs)}] {name}"
        display.start_run(i, name)
        if summary.is_file():
            metrics = json.loads(summary.read_text())
            display.finish_run(skipped=True)
            say(f"{tag}: done before (test top-1 {metrics['test_top1']:.2f}%)")
        else:
            left = display.time_left()
            eta = f" (study: about {left / 60:.1f} min left)" if left is not None else ""
            cost = f"{point.macs / 1e6:.2f}M multiply-adds at {point.arch.resolution}px"
            say(f"{tag}: training {cost}{eta}")
            started = time.perf_counter()
            progress = display if display.shows_steps else False
            result = runfolder.train_or_resume(
                train_fn,
                point.arch,
                data,
                recipe_for_run(recipe, seed, multiple),
                run_dir,
                progress,
            )
            metrics = dict(result.metrics)
            trained += 1
            display.finish_run()
            say(f"{tag}: test top-1 {metrics['test_top1']:.2f}% "
                f"({time.perf_counter() - started:.0f} s)")  # fmt: skip
        rows.append(result_row(point, points, seed, metrics, run_dir, out, multiple))
        write_report(out, study, points, rows, final=False)
    return rows, trained


Job = tuple[Point, int, float]  # (point, seed, epoch multiple)


def study_jobs(study: Study, points: list[Point]) -> list[Job]:
    """Every run, seed-major so each seed's set finishes before the next starts; the
    Table-7 and family points again at each longer epoch multiple, after all
    runs at the recipe's epochs."""
    runs = unique_runs(points)
    jobs = [(p, seed, 1.0) for seed in study.seeds for p in runs]
    table7 = unique_runs([p for p in points if p.group in ("table7", "family")])
    for multiple in study.epoch_multiples[1:]:
        jobs += [(p, seed, multiple) for seed in study.seeds for p in table7]
    return jobs


def run_path(key: str, seed: int, multiple: float) -> str:
    """runs/<key>/seed<N>, or runs/<key>/x<multiple>/seed<N> at a longer epoch multiple."""
    return f"{key}/seed{seed}" if multiple == 1.0 else f"{key}/x{multiple:g}/seed{seed}"


def recipe_for_run(recipe: Any, seed: int, multiple: float) -> Any:
    """The study's recipe for one run: its seed, and ``multiple`` times the epochs (and the
    time limit, if any)."""
    if multiple == 1.0:
        return recipe.replace(seed=seed)
    limit = recipe.max_time_s * multiple if recipe.max_time_s is not None else None
    return recipe.replace(seed=seed, epochs=recipe.epochs * multiple, max_time_s=limit)


def result_row(
    point: Point,
    points: list[Point],
    seed: int,
    metrics: dict[str, Any],
    run_dir: Path,
    out: Path,
    multiple: float = 1.0,
) -> dict[str, Any]:
    """One results.csv row; ``lines`` lists every experiment line the run belongs to."""
    lines = sorted({f"{p.group}:{p.method}" for p in points if p.key == point.key})
    base = next((p for p in points if p.method == "baseline"), points[0])
    eff = effective_multipliers(base.arch, point.arch)
    return dict(
        key=point.key, lines=";".join(lines), model=metrics.get("model", point.arch.name),
        depth=round(point.depth, 4), width=round(point.width, 4),
        resolution_mult=round(point.resolution_mult, 4), resolution=point.arch.resolution,
        effective_depth=round(eff[0], 4), effective_width=round(eff[1], 4),
        effective_resolution_mult=round(eff[2], 4),
        params=metrics.get("params"), macs=metrics.get("macs", point.macs), seed=seed,
        epoch_multiple=multiple,
        minival_top1=metrics.get("minival_top1"), test_top1=metrics.get("test_top1"),
        test_top5=metrics.get("test_top5"), epochs=metrics.get("epochs"),
        train_time_s=metrics.get("train_time_s"), run_dir=str(run_dir.relative_to(out)),
    )  # fmt: skip
