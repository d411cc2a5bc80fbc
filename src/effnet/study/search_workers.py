"""The coefficient search's workers: the Optuna storage they share, the study they join,
the loop each runs, and the repair of trials left by dead workers (the guarantees are in
:mod:`effnet.study.search`)."""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

from effnet.errors import EffnetError
from effnet.study.coefficients import (
    SearchConfig,
    candidate_id,
    evaluate_candidate,
    grid,
    parse_candidate,
)


# -- storage --------------------------------------------------------------------------------
def open_storage(url: str | None, out: Path) -> Any:
    """A journal file in ``out`` by default; a ``.journal``/``.log`` path; or an RDB URL."""

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    if url is None or url.endswith((".journal", ".log")) and "://" not in url:
        path = Path(url) if url else out / "optuna.journal"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as e:
            raise EffnetError(f"cannot open journal storage {path}: {e.strerror}") from None
    kwargs: dict[str, Any] = {}
    if url.startswith("postgresql"):
        kwargs["connect_args"] = {"connect_timeout": 5}
    # Optuna 4.9 renamed failed_trial_callback (the old name warns on stderr since then)
    params = inspect.signature(optuna.storages.RDBStorage).parameters
    stale = "heartbeat_stale_trial_callback"
    callback = {stale if stale in params else "failed_trial_callback": _requeue}
    for attempt in range(3):
        try:
            return optuna.storages.RDBStorage(
                _driver(url), engine_kwargs=kwargs, heartbeat_interval=30, grace_period=120,
                **callback,
            )  # fmt: skip
        except Exception as e:  # sqlalchemy / driver errors: one line naming the URL
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            # two workers creating the tables of a fresh database at once: one loses the
            # race on PostgreSQL's catalog ("duplicate key ... pg_type"); the tables exist now
            if "duplicate key" in first and attempt < 2:
                time.sleep(0.5 * (attempt + 1))
                continue
            raise EffnetError(f"cannot reach storage {_redact(url)}: {first}") from None
    raise AssertionError("unreachable")


def _driver(url: str) -> str:
    """SQLAlchemy 2.1 maps postgresql:// to psycopg 3; use psycopg2 when only it is there."""

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None:
        if importlib.util.find_spec("psycopg2") is not None:
            return "postgresql+psycopg2://" + url[len("postgresql://") :]
    return url


def _redact(url: str) -> str:
    """The URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        return f"{scheme}://{cred.split(':')[0]}:***@{host}" if ":" in cred else url
    return url


def _requeue(study: Any, trial: Any) -> None:
    """Put a failed trial's candidate back in the queue, unless it failed too often."""

    if trial.user_attrs.get("surplus") or "candidates" not in study.user_attrs:
        return  # a study's runs are re-queued by effnet.study.study_workers.repair
    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    config = json.loads(study.user_attrs.get("config", "{}"))
    if len(history) > config.get("max_retries", 2):
        return
    params, dists = dict(trial.params), dict(trial.distributions)
    if "candidate" not in params:  # failed before choosing: take the grid's choice
        ids = list(study.user_attrs["candidates"])
        gid = trial.system_attrs.get("grid_id")
        if gid is None or gid >= len(ids):
            return
        params = {"candidate": ids[gid]}
        dists = {"candidate": optuna.distributions.CategoricalDistribution(ids)}
    attrs = {**trial.system_attrs, "failed_trial": history[0], "retry_history": history}
    attrs["fixed_params"] = params
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.WAITING,
            params=params,
            distributions=dists,
            system_attrs=attrs,
        )
    )


# -- workers --------------------------------------------------------------------------------
def open_study(cfg: SearchConfig | None, storage: Any, name: str | None) -> tuple[Any, Any]:
    """Create or join the Optuna study; a joining worker takes the config stored in it."""

    study_name = name or (cfg.name if cfg else SearchConfig.name)
    existing = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    if study_name in existing:
        study = optuna.load_study(study_name=study_name, storage=storage)
        saved = SearchConfig.from_json(study.user_attrs["config"])
        if cfg is not None and cfg != saved:
            raise EffnetError(
                f"search {study_name!r} in this storage has a different config; "
                "join it without options or pick another --name"
            )
        cfg = saved
    elif cfg is None:
        raise EffnetError(f"no search named {study_name!r} in this storage to join")
    ids = [candidate_id(*c) for c in grid(cfg.step, cfg.tolerance)]
    sampler = optuna.samplers.GridSampler({"candidate": ids}, seed=cfg.seed)
    pruner = optuna.pruners.PercentilePruner(25.0, n_startup_trials=4, n_warmup_steps=0)
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        direction="maximize",
        load_if_exists=True,
    )
    if "config" not in study.user_attrs:
        study.set_user_attr("config", cfg.to_json(indent=None, sort_keys=True))
        study.set_user_attr("candidates", ids)
    return study, cfg


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


def claim(trial: Any) -> None:
    """Record which process runs the trial (``fail_dead_workers_trials`` fails it once that
    process died)."""
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())


def fail_dead_workers_trials(study: Any, storage: Any) -> list[Any]:
    """Mark failed the trials left RUNNING by workers on this host whose process is gone
    (a journal has no heartbeat; an RDB storage also fails stale heartbeats itself). Each
    worker records ``host`` and ``pid`` as user attributes when its trial starts. Returns
    the trials it failed."""
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


def repair(study: Any, storage: Any, ids: list[str], max_retries: int) -> int:
    """Fail trials left RUNNING by dead workers on this host, and re-queue every candidate
    that has only failed attempts (fewer than ``max_retries`` + 1) and none pending.

    Run when a worker starts, so an interrupted search (Ctrl-C, kill -9) resumes.
    """

    fail_dead_workers_trials(study, storage)
    trials = study.get_trials(deepcopy=False)
    n = 0
    for cid in ids:
        mine = [t for t in trials if candidate_of(t, ids) == cid]
        if any(t.state != TrialState.FAIL for t in mine) or not mine:
            continue
        if len(mine) <= max_retries:
            _requeue(study, mine[-1])
            n += 1
    return n


def candidate_of(trial: Any, ids: list[str]) -> str | None:
    if trial.user_attrs.get("surplus"):
        return None
    if "candidate" in trial.params:
        return trial.params["candidate"]
    gid = trial.system_attrs.get("grid_id")
    return ids[gid] if gid is not None and gid < len(ids) else None


def _taken(study: Any, trial: Any, cid: str, ids: list[str]) -> bool:
    """Another trial already evaluated ``cid``, or is evaluating it and started first."""

    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    for t in study.get_trials(deepcopy=False, states=states):
        if t.number != trial.number and candidate_of(t, ids) == cid:
            if t.state != TrialState.RUNNING or t.number < trial.number:
                return True
    return False


def work_remains(study: Any, ids: list[str]) -> bool:
    """A retry is queued, or some candidate has no trial yet."""

    trials = study.get_trials(deepcopy=False)
    if any(t.state == TrialState.WAITING for t in trials):
        return True
    seen = {candidate_of(t, ids) for t in trials}
    return any(cid not in seen for cid in ids)


def work(
    cfg: SearchConfig, study: Any, storage: Any, out: Path, train_fn: Any, log: Any = None
) -> int:
    """Evaluate candidates until the grid is done; returns how many this worker trained."""

    ids = list(study.user_attrs["candidates"])
    done = 0

    def objective(trial: optuna.Trial) -> float:
        nonlocal done
        claim(trial)
        attrs = storage.get_trial_system_attrs(trial_storage_id(storage, study, trial.number))
        retry = "retry_history" in attrs
        cid = trial.suggest_categorical("candidate", ids)
        if _taken(study, trial, cid, ids):
            return _surplus(study, trial, f"{cid} is taken by another trial")
        a, b, g = parse_candidate(cid)
        for k, v in (("alpha", a), ("beta", b), ("gamma", g)):
            trial.set_user_attr(k, v)
        if log:
            log(f"trial {trial.number}: {cid}" + (" (retry)" if retry else ""))
        value = evaluate_candidate(cfg, trial, cid, out, train_fn)
        done += 1
        if log:
            log(f"trial {trial.number}: {cid} minival top-1 {value:.2f}%")
        return value

    def after(study: Any, trial: Any) -> None:
        if trial.state == optuna.trial.TrialState.FAIL:
            _requeue(study, trial)
        if not work_remains(study, ids):
            study.stop()

    while True:
        repair(study, storage, ids, cfg.max_retries)
        if not work_remains(study, ids):
            return done
        study.optimize(objective, catch=(Exception,), callbacks=[after], gc_after_trial=True)


def _surplus(study: Any, trial: Any, why: str) -> float:
    trial.set_user_attr("surplus", True)
    study.stop()
    raise _Surplus(f"trial {trial.number} not run: {why}")


class _Surplus(Exception):
    """A trial created after the whole grid was handed out (a race between workers)."""


def wait_for_others(
    cfg: SearchConfig, study: Any, storage: Any, out: Path, train_fn: Any, log: Any
) -> None:
    """Until no trial runs elsewhere: so every worker writes the complete results. Trials of
    dead workers are failed (heartbeat / dead pid) and retried here."""

    said = False
    while True:
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if not running:
            return
        if log and not said:
            log(f"waiting for {len(running)} trial(s) running in other workers")
            said = True
        time.sleep(2.0)
        optuna.storages.fail_stale_trials(study)
        work(cfg, study, storage, out, train_fn, log)
