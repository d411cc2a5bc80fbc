"""A study spread over worker processes on one or many machines, through an Optuna storage.

Every run of the study, a (point, seed, epoch multiple) job named by its run path
(``d1-w1-r16/seed0``, ``d1-w1-r16/x2/seed0``), is one enqueued Optuna trial in a shared
storage: a journal file (one machine, or a shared file system) or an RDB URL (PostgreSQL,
for a cluster). Each worker is a plain ``effnet study ... --storage URL`` process:

- a worker pops a waiting trial (the storage hands each to one worker), trains the job into
  ``<out>/runs/<job>`` and stores the result row in the trial, so the report needs only the
  storage, not the other machines' files;
- each job is trained to completion once: a trial that finds its job done, or being run by
  an earlier trial (two workers that created the queue at once), ends as a "surplus" failure
  without training;
- a job whose trial failed (an exception, Ctrl-C) or whose worker died (a dead pid on this
  host; a stale heartbeat on RDB storages) is queued again, up to ``MAX_RETRIES`` times; its
  run folder is resumed from its last checkpoint where the folder is shared;
- a worker with nothing left waits for the runs still going elsewhere (taking over any that
  die), and the last one writes the report; ``effnet study --report --storage URL`` writes it
  from the storage alone.

A run folder that already holds ``summary.json`` (a study begun without workers) counts as
done and is not trained again.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from effnet.data import DataSpec
from effnet.errors import EffnetError
from effnet.jobs.join import join_study, study_names
from effnet.jobs.local import process_count
from effnet.jobs.storage import open_storage
from effnet.jobs.trials import (
    MAX_RETRIES,
    SURPLUS,
    claim,
    fail_dead_workers_trials,
    run_until,
    surplus,
    system_attrs,
    taken,
    wait_for_others,
)
from effnet.rundir import ToolFolder
from effnet.study.report import curve, write_report
from effnet.study.runner import Job, recipe_for_run, result_row, run_path, study_jobs
from effnet.study.study import Point, Study, plan
from effnet.train import runfolder
from effnet.train.recipe import resolve

PARAM = "job"
PREFIX = "study:"  # an Optuna study holding an effnet study's jobs is named PREFIX + name


def open_queue(study: Study | None, url: str | None, out: Path) -> tuple[Any, Any, Study]:
    """(storage, Optuna study, study): create the Optuna study named after ``study``, or
    join the one in the storage: with ``study`` None, the only study there."""
    storage = open_storage(url, out)
    if study is None:
        mine = [n for n in study_names(storage) if n.startswith(PREFIX)]
        if len(mine) != 1:
            found = ", ".join(n[len(PREFIX) :] for n in mine) or "none"
            raise EffnetError(f"give the study config: this storage holds studies {found}")
        name, attrs = mine[0], None
    else:
        name, attrs = PREFIX + study.name, {"config": study.to_json(indent=None, sort_keys=True)}
    joined = join_study(storage, url, out, name, attrs=attrs, keys=("config",), what="study")
    stored = Study.from_json(joined.attrs["config"])
    if study is not None and study != stored:
        raise EffnetError(
            f"study {study.name!r} in this storage has a different config; join it "
            "without one, or give the study another name"
        )
    return storage, joined.study, stored


def job_table(study: Study, points: list[Point] | None = None) -> dict[str, Job]:
    """Job id (its run path) -> (point, seed, epoch multiple), in training order
    (``points``: the study's plan, when the caller has it)."""
    points = plan(study) if points is None else points
    return {run_path(p.key, seed, b): (p, seed, b) for p, seed, b in study_jobs(study, points)}


def job_of(trial: Any) -> str | None:
    if trial.user_attrs.get(SURPLUS):
        return None
    return trial.params.get(PARAM) or trial.system_attrs.get("fixed_params", {}).get(PARAM)


def repair(ostudy: Any, storage: Any, ids: list[str]) -> int:
    """Fail trials left running by dead workers on this host, then queue every job that has
    no trial done, running or waiting (and fewer than ``MAX_RETRIES`` + 1 failures).
    Returns how many jobs were queued. A new study's first call queues them all."""

    fail_dead_workers_trials(ostudy, storage)
    failed: dict[str, int] = {}
    live: set[str] = set()
    for t in ostudy.get_trials(deepcopy=False):
        job = job_of(t)
        if job is None:
            continue
        if t.state == TrialState.FAIL:
            failed[job] = failed.get(job, 0) + 1
        else:
            live.add(job)
    queued = 0
    for job in ids:
        if job not in live and failed.get(job, 0) <= MAX_RETRIES:
            ostudy.enqueue_trial({PARAM: job}, skip_if_exists=False)
            queued += 1
    return queued


def _waiting(ostudy: Any) -> bool:
    return bool(ostudy.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def work(
    study: Study,
    points: list[Point],
    ostudy: Any,
    storage: Any,
    out: Path,
    train_fn: Any,
    log: Callable,
) -> int:
    """Train queued jobs until none is waiting; returns how many this worker trained."""

    jobs = job_table(study, points)
    ids = list(jobs)
    recipe = resolve(study.recipe).replace(**study.recipe_overrides)
    data = DataSpec.from_dict(study.data)
    done = 0

    def objective(trial: optuna.Trial) -> float:
        nonlocal done
        claim(trial)
        if PARAM not in system_attrs(storage, ostudy, trial).get("fixed_params", {}):
            surplus(trial, "no queued job", ostudy)  # not from the queue (a race)
        job = trial.suggest_categorical(PARAM, ids)
        if taken(ostudy, trial, job, job_of):
            surplus(trial, f"{job} is done or taken", ostudy)
        point, seed, multiple = jobs[job]
        run_dir = out / "runs" / job
        if runfolder.finished(run_dir):
            metrics = json.loads((run_dir / runfolder.SUMMARY).read_text())
            log(f"{job}: done before (test top-1 {metrics['test_top1']:.2f}%)")
        else:
            log(f"{job}: training {point.macs / 1e6:.2f}M multiply-adds (trial {trial.number})")
            started = time.perf_counter()
            result = runfolder.train_or_resume(
                train_fn, point.arch, data, recipe_for_run(recipe, seed, multiple), run_dir
            )
            metrics = dict(result.metrics)
            done += 1
            log(f"{job}: test top-1 {metrics['test_top1']:.2f}% "
                f"({time.perf_counter() - started:.0f} s)")  # fmt: skip
        row = result_row(point, points, seed, metrics, run_dir, out, multiple)
        row["curve"] = [list(c) for c in curve(run_dir)]
        trial.set_user_attr("row", row)
        return float(metrics["test_top1"])

    def on_fail(_: Any, trial: Any) -> None:
        if trial.state == TrialState.FAIL and not trial.user_attrs.get(SURPLUS):
            log(f"trial {trial.number} ({job_of(trial)}) failed; it will be tried again")

    run_until(ostudy, objective, lambda: _waiting(ostudy), lambda: repair(ostudy, storage, ids),
              on_fail)  # fmt: skip
    return done


def rows_of(ostudy: Any, study: Study, points: list[Point]) -> list[dict[str, Any]]:
    """One result row per finished job, in the study's training order."""
    by_job: dict[str, dict[str, Any]] = {}
    for t in ostudy.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        job = job_of(t)
        if job is not None and "row" in t.user_attrs:
            by_job.setdefault(job, t.user_attrs["row"])
    return [by_job[j] for j in job_table(study, points) if j in by_job]


def report(
    study: Study, points: list[Point], ostudy: Any, out: Path
) -> tuple[list[dict[str, Any]], bool]:
    """Write the report from the storage; (rows, whether every job finished)."""
    rows = rows_of(ostudy, study, points)
    write_report(out, study, points, rows, final=True)
    return rows, len(rows) == len(job_table(study, points))


def run_workers(
    study: Study | None,
    out: str | Path,
    storage: str | None,
    *,
    processes: int = 1,
    workers: int | None = None,
    report_only: bool = False,
    train_fn: Any = None,
    log: Callable = print,
) -> tuple[list[dict[str, Any]], bool]:
    """Start or join the study in ``storage`` (default: a journal file in ``out``) as one
    worker, plus ``workers`` - 1 worker processes on this machine; or with ``report_only``
    only write the report. Returns (rows, whether every job finished).

    ``out`` is a study folder effnet made (or a new one), shared-locked by every worker on
    this machine; a sequential ``effnet study`` cannot run in it at the same time."""
    workers = process_count(processes, workers)
    from effnet.study.runner import default_train_fn

    out = Path(out)
    url = storage or str(out / "optuna.journal")
    if study is None and storage is None and not Path(url).is_file():
        raise EffnetError(
            f"no study to join in {out} (no optuna.journal there); give the study config, "
            "or --storage URL of the study's storage"
        )
    folder = ToolFolder(out, "study").open_shared()
    try:
        st, ostudy, study = open_queue(study, url, out)
        points = plan(study)
        if report_only:
            return report(study, points, ostudy, out)
        study.save(out / "study.json")
        cmd = [sys.executable, "-m", "effnet", "study", "--worker", "--storage", url,
               "--out", str(out)]  # fmt: skip
        children = [subprocess.Popen(cmd) for _ in range(max(0, workers - 1))]
        train_fn = train_fn or default_train_fn()
        try:
            n = work(study, points, ostudy, st, out, train_fn, log)
        finally:
            for c in children:
                c.wait()
        wait_for_others(ostudy, lambda: work(study, points, ostudy, st, out, train_fn, log), log)
        rows, complete = report(study, points, ostudy, out)
        log(f"study {study.name}: this worker trained {n} run(s); "
            f"{len(rows)} of {len(job_table(study, points))} done")  # fmt: skip
        return rows, complete
    finally:
        folder.unlock()
