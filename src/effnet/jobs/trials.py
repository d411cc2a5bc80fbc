"""What every work queue does with its trials: claim one, find a dead worker's, end a
surplus one without running it, and the loops that work and then wait for the others.

A queue describes its trials by a key (the job, the candidate, the confirmed trial): two
trials with one key do the same work, and :func:`taken` decides which of them runs.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import TrialState

MAX_RETRIES = 2  # a trial whose attempt failed is queued at most this many times more
WAIT_POLL_S = 2.0  # how often a worker with nothing left looks at the others' trials
KEY_WAIT_S = 10.0  # longest wait for an earlier running trial to get its key (see taken)
SURPLUS = "surplus"  # user attribute of a trial ended without running (not a failure)


class Surplus(Exception):
    """A trial whose work is done or taken by another trial: ended without running."""


def surplus(trial: Any, why: str, study: Any = None) -> None:
    """End ``trial`` unrun (and, given ``study``, this worker's ``optimize`` loop, which
    :func:`run_until` starts again after its repair)."""
    trial.set_user_attr(SURPLUS, True)
    if study is not None:
        study.stop()
    raise Surplus(f"trial {trial.number} not run: {why}")


def counted(study: Any, states: tuple[TrialState, ...] | None = None) -> list[Any]:
    """The study's trials, less the surplus ones."""
    trials = study.get_trials(deepcopy=False, states=states)
    return [t for t in trials if not t.user_attrs.get(SURPLUS)]


def taken(study: Any, trial: Any, key: Any, key_of: Callable[[Any], Any]) -> bool:
    """Another trial with ``key`` did the work (complete, or pruned: evaluated), or is
    queued or running and numbered before ``trial`` (so exactly one of them runs).

    A trial is created RUNNING and gets its key a moment later (the sampler's
    ``before_trial``): an earlier running trial with no key yet may be about to take
    ``key``, so the answer waits for it, at most ``KEY_WAIT_S``."""
    deadline = time.monotonic() + KEY_WAIT_S
    while True:
        unknown = False
        for t in counted(study):
            if t.number == trial.number:
                continue
            k = key_of(t)
            earlier = t.number < trial.number
            if k is None and earlier and t.state == TrialState.RUNNING:
                unknown = True
            elif k != key:
                continue
            elif t.state in (TrialState.COMPLETE, TrialState.PRUNED):
                return True
            elif earlier and t.state in (TrialState.RUNNING, TrialState.WAITING):
                return True
        if not unknown or time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def trial_storage_id(storage: Any, study: Any, number: int) -> int:
    """A trial's storage id from its number, through the storage's public API."""
    study_id = storage.get_study_id_from_name(study.study_name)
    return storage.get_trial_id_from_study_id_trial_number(study_id, number)


def system_attrs(storage: Any, study: Any, trial: Any) -> dict[str, Any]:
    """A running trial's system attributes (``fixed_params`` of a queued one among them)."""
    return storage.get_trial_system_attrs(trial_storage_id(storage, study, trial.number))


def claim(trial: Any) -> None:
    """Record which process runs the trial (:func:`fail_dead_workers_trials` fails it once
    that process died)."""
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())


def fail_dead_workers_trials(study: Any, storage: Any) -> list[Any]:
    """Mark failed the trials left RUNNING by workers on this host whose process is gone
    (a journal has no heartbeat; an RDB storage also fails stale heartbeats itself).
    Returns the trials it failed."""
    host, me = socket.gethostname(), os.getpid()
    dead = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if t.user_attrs.get("host") == host and pid not in (None, me) and not pid_alive(pid):
            storage.set_trial_state_values(
                trial_storage_id(storage, study, t.number), TrialState.FAIL
            )
            dead.append(t)
    return dead


def run_until(
    study: Any,
    run_trial: Callable[[optuna.Trial], Any],
    remains: Callable[[], bool],
    repair: Callable[[], Any],
    after: Callable[[Any, Any], Any] | None = None,
) -> None:
    """A worker's loop over a study: ``repair`` (dead workers' trials failed and queued
    again), then run trials while ``remains()``. A trial that raises is failed by Optuna
    (``after(study, trial)`` is called as each ends); a surplus one stops ``optimize``,
    which starts again here."""

    def ended(study: Any, trial: Any) -> None:
        if after is not None:
            after(study, trial)
        if not remains():
            study.stop()

    while True:
        repair()
        if not remains():
            return
        study.optimize(run_trial, catch=(Exception,), callbacks=[ended], gc_after_trial=True)


def wait_for_others(study: Any, again: Callable[[], Any], log: Callable | None = None) -> None:
    """Until no trial of ``study`` runs elsewhere, so every worker reports the complete
    results; trials of workers that die meanwhile are failed and ``again`` retries them."""
    said = False
    while counted(study, (TrialState.RUNNING,)):
        if log and not said:
            log("waiting for trials running in other workers")
            said = True
        time.sleep(WAIT_POLL_S)
        optuna.storages.fail_stale_trials(study)  # RDB heartbeats; journals: dead pids
        again()
