"""Run a study: every point x seed through ``effnet.train.train``, one run folder each.

Study folder::

    study.json            the Study (what was asked)
    plan.json             every point: multipliers, resolution, multiply-adds, budget error
    runs/<key>/seed<N>/   one training run folder per distinct architecture and seed
    results.csv / .json   one row per finished run (written after every run)
    fig3.png, fig4.png, table7.png, report.md

A run folder with ``summary.json`` is finished and never retrained; one without it (the
study was interrupted) is resumed from its last checkpoint.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from effnet.errors import EffnetError
from effnet.io import atomic_write_text
from effnet.study.study import Point, Study, plan, unique_runs

TrainFn = Callable[..., Any]  # effnet.train.train's signature


@dataclass(frozen=True)
class StudyResult:
    folder: Path
    rows: list[dict[str, Any]]  # one per finished run
    trained: int  # runs trained (or resumed) by this call; the rest were already finished
    wall_time_s: float


def prepare_folder(out: Path, study: Study | None, resume: bool, force: bool) -> Study:
    """The study to run in ``out``: never overwrites a study without ``resume`` or ``force``."""
    saved = out / "study.json"
    if resume:
        if not saved.is_file():
            if study is None:
                raise EffnetError(f"cannot resume: {out} has no study.json")
            return study
        old = Study.load(saved)
        if study is not None and study != old:
            raise EffnetError(
                f"{out} holds a different study; resume it without a config, or pass --force"
            )
        return old
    if study is None:
        raise EffnetError("no study given (a config file, --quick, or --resume DIR)")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise EffnetError(
                f"study folder {out} already exists (pass --resume to continue it, "
                "--force to start over)"
            )
        shutil.rmtree(out)
    return study


def default_train_fn() -> TrainFn:
    """``effnet.train.train``, or a test double named by ``EFFNET_TRAIN_FN=module:function``."""
    import importlib
    import os

    spec = os.environ.get("EFFNET_TRAIN_FN")
    if spec:
        module, _, attr = spec.partition(":")
        return getattr(importlib.import_module(module), attr)
    from effnet.train import train

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
    from effnet.data import DataSpec
    from effnet.study.report import write_report
    from effnet.train.recipe import resolve

    out = Path(out)
    study = prepare_folder(out, study, resume, force)
    train_fn = train_fn or default_train_fn()
    say = log or (lambda m: print(m, file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    points = plan(study)
    out.mkdir(parents=True, exist_ok=True)
    study.save(out / "study.json")
    atomic_write_text(out / "plan.json", json.dumps([p.to_dict() for p in points], indent=2))
    recipe = resolve(study.recipe).replace(**study.recipe_overrides)
    data = DataSpec.from_dict(study.data)
    jobs = [(p, seed) for seed in study.seeds for p in unique_runs(points)]  # seed-major
    say(f"study {study.name}: {len(jobs)} runs ({len(unique_runs(points))} models x "
        f"{len(study.seeds)} seeds) in {out}")  # fmt: skip
    rows: list[dict[str, Any]] = []
    trained, spent = 0, 0.0
    for i, (point, seed) in enumerate(jobs, start=1):
        run_dir = out / "runs" / point.key / f"seed{seed}"
        summary = run_dir / "summary.json"
        if summary.is_file():
            metrics = json.loads(summary.read_text())
            say(f"[{i}/{len(jobs)}] {point.key} seed {seed}: done before "
                f"(test top-1 {metrics['test_top1']:.2f}%)")  # fmt: skip
        else:
            eta = _eta(spent, trained, len(jobs) - i + 1)
            cost = f"{point.macs / 1e6:.2f}M multiply-adds at {point.arch.resolution}px"
            say(f"[{i}/{len(jobs)}] {point.key} seed {seed}: training {cost}{eta}")
            started = time.perf_counter()
            again = (run_dir / "config.json").is_file()
            result = train_fn(
                None if again else point.arch,
                None if again else data,
                recipe.replace(seed=seed),
                run_dir,
                resume=again,
                progress=progress,
            )
            metrics = dict(result.metrics)
            spent += time.perf_counter() - started
            trained += 1
            say(f"[{i}/{len(jobs)}] {point.key} seed {seed}: test top-1 "
                f"{metrics['test_top1']:.2f}% ({time.perf_counter() - started:.0f} s)")  # fmt: skip
        rows.append(result_row(point, points, seed, metrics, run_dir, out))
        write_report(out, study, points, rows, final=False)
    write_report(out, study, points, rows, final=True)
    wall = time.perf_counter() - t0
    say(f"study {study.name}: {len(rows)} runs ({trained} trained now) in {wall:.0f} s; "
        f"report: {out / 'report.md'}")  # fmt: skip
    return StudyResult(out, rows, trained, wall)


def _eta(spent: float, trained: int, remaining: int) -> str:
    if not trained:
        return ""
    return f" (about {spent / trained * remaining / 60:.1f} min left)"


def result_row(
    point: Point,
    points: list[Point],
    seed: int,
    metrics: dict[str, Any],
    run_dir: Path,
    out: Path,
) -> dict[str, Any]:
    """One results.csv row; ``lines`` lists every experiment line the run belongs to."""
    lines = sorted({f"{p.group}:{p.method}" for p in points if p.key == point.key})
    return dict(
        key=point.key, lines=";".join(lines), model=metrics.get("model", point.arch.name),
        depth=round(point.depth, 4), width=round(point.width, 4),
        resolution_mult=round(point.resolution, 4), resolution=point.arch.resolution,
        params=metrics.get("params"), macs=metrics.get("macs", point.macs), seed=seed,
        minival_top1=metrics.get("minival_top1"), test_top1=metrics.get("test_top1"),
        test_top5=metrics.get("test_top5"), epochs=metrics.get("epochs"),
        train_time_s=metrics.get("train_time_s"), run_dir=str(run_dir.relative_to(out)),
    )  # fmt: skip
