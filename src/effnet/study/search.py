"""Step 1 of compound scaling: grid-search alpha, beta, gamma at phi = 1 on a proxy task.

The grid holds every (alpha, beta, gamma) >= 1 on a ``step`` lattice with
alpha * beta^2 * gamma^2 within ``tolerance`` of 2 (section 3.3). Each candidate scales the
baseline by (alpha^phi, beta^phi, gamma^phi), is trained with ``effnet.train.train`` and
ranked by minival top-1.

The search is an Optuna study with a :class:`~optuna.samplers.GridSampler` over candidate
ids; its storage is how it spreads over processes and machines: a journal file by default,
any RDB URL (PostgreSQL) for a cluster. Every worker is a plain ``effnet search-coefficients
--storage URL`` process. Guarantees:

- each candidate is trained to completion once: GridSampler gives trial n < grid size grid
  point n (trial numbers are unique in the storage); a later trial that finds its
  candidate done, or being run by an earlier trial (a race between workers), ends as a
  "surplus" failure without training;
- a trial that raises, or whose worker died (heartbeat on RDB, a dead pid on this host for
  journals), is marked failed and re-queued with the same candidate (up to ``max_retries``);
  failed trials are never counted in the results;
- hopeless candidates are pruned after the first rung of epochs (bottom quartile of
  minival top-1 among trials at the same rung), when the schedule allows extending a run.
"""

from __future__ import annotations

import json
import math
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from effnet.errors import EffnetError
from effnet.record import Record, checked_fields, construct

PAPER = (1.2, 1.1, 1.15)  # the paper's grid-search result for B0


@dataclass(frozen=True)
class SearchConfig(Record):
    """What the coefficient search trains; stored in the Optuna study so workers agree."""

    name: str = "coefficients"  # the Optuna study name
    baseline: str = "efficientnet_b0"  # model name or architecture JSON path
    baseline_phi: float | None = None  # shrink the baseline into a proxy first ...
    baseline_width: float = 1.0
    baseline_depth: float = 1.0
    resolution: int | None = None  # base resolution of the proxy (px)
    data: dict[str, Any] = field(default_factory=dict)  # effnet.data.DataSpec fields
    recipe: str = "cpu"
    recipe_overrides: dict[str, Any] = field(default_factory=lambda: {"schedule": "step"})
    phi: float = 1.0  # candidates are the baseline scaled by alpha^phi, beta^phi, gamma^phi
    step: float = 0.05  # grid spacing of alpha, beta, gamma
    tolerance: float = 0.1  # |alpha*beta^2*gamma^2 - 2| <= tolerance
    prune: bool = True  # prune the bottom quartile after the first rung
    first_rung: float | None = None  # epochs before the pruning check; None: a third
    max_retries: int = 2  # re-runs of a failed trial before the candidate is given up
    seed: int = 0
    coefficients: tuple[float, float, float] = PAPER  # only to build a phi-scaled proxy

    def __post_init__(self) -> None:
        if not 0 < self.step <= 0.5:
            raise EffnetError(f"search step must be in (0, 0.5], got {self.step}")
        if not 0 < self.tolerance <= 1:
            raise EffnetError(f"search tolerance must be in (0, 1], got {self.tolerance}")
        if not (math.isfinite(self.phi) and self.phi > 0):
            raise EffnetError(f"search phi must be positive, got {self.phi}")
        if self.max_retries < 0:
            raise EffnetError("search max_retries must be >= 0")
        for v in (self.baseline_width, self.baseline_depth):
            if not v > 0:
                raise EffnetError(f"search baseline multipliers must be positive, got {v}")
        if not grid(self.step, self.tolerance):
            raise EffnetError(f"no candidate on a {self.step} grid within {self.tolerance} of 2")

    KIND: ClassVar[str] = "search config"  # JSON in and out: effnet.record.Record

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchConfig:
        d = checked_fields(cls, data, cls.KIND)
        if "coefficients" in d:
            d["coefficients"] = tuple(d["coefficients"])
        return construct(cls, d, cls.KIND)


# -- the grid -------------------------------------------------------------------------------
def grid(step: float, tolerance: float) -> list[tuple[float, float, float]]:
    """Every (alpha, beta, gamma) >= 1 on the lattice with |alpha*beta^2*gamma^2 - 2| <= tol."""
    n = int((2 + tolerance - 1) / step + 1e-9)
    values = [round(1 + i * step, 6) for i in range(n + 1)]
    out = []
    for a in values:
        for b in values:
            for g in values:
                if abs(a * b * b * g * g - 2) <= tolerance + 1e-9:
                    out.append((a, b, g))
    return out


def candidate_id(a: float, b: float, g: float) -> str:
    return f"a{a:g}-b{b:g}-g{g:g}"


def parse_candidate(cid: str) -> tuple[float, float, float]:
    a, b, g = (float(p[1:]) for p in cid.split("-"))
    return a, b, g


# -- storage --------------------------------------------------------------------------------
def open_storage(url: str | None, out: Path) -> Any:
    """A journal file in ``out`` by default; a ``.journal``/``.log`` path; or an RDB URL."""
    import warnings

    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

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
    try:
        return optuna.storages.RDBStorage(
            _driver(url),
            engine_kwargs=kwargs,
            heartbeat_interval=30,
            grace_period=120,
            failed_trial_callback=_requeue,
        )
    except Exception as e:  # sqlalchemy / driver errors: one line naming the URL
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EffnetError(f"cannot reach storage {_redact(url)}: {first}") from None


def _driver(url: str) -> str:
    """SQLAlchemy 2.1 maps postgresql:// to psycopg 3; use psycopg2 when only it is there."""
    import importlib.util

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
    import optuna

    if trial.user_attrs.get("surplus"):
        return
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


# -- one candidate --------------------------------------------------------------------------
def proxy(cfg: SearchConfig) -> Any:
    from effnet.study.study import proxy_baseline

    return proxy_baseline(
        cfg.baseline, cfg.baseline_phi, cfg.baseline_width, cfg.baseline_depth,
        cfg.resolution, cfg.coefficients, f"{cfg.name}-proxy",
    )  # fmt: skip


def candidate_arch(cfg: SearchConfig, a: float, b: float, g: float) -> Any:
    from effnet.scaling import scale

    p = cfg.phi
    return scale(proxy(cfg), depth=a**p, width=b**p, resolution=g**p, name=candidate_id(a, b, g))


def rungs(cfg: SearchConfig, epochs: float, schedule: str) -> list[float]:
    """Epoch counts at which a candidate is checked; extending a run by resuming it keeps
    its learning-rate schedule only when the schedule does not depend on the run length."""
    if not cfg.prune or schedule != "step" or epochs < 2:
        return [epochs]
    first = cfg.first_rung or max(1.0, round(epochs / 3, 1))
    return [first, epochs] if first < epochs else [epochs]


def evaluate_candidate(cfg: SearchConfig, trial: Any, cid: str, out: Path, train_fn: Any) -> float:
    """Train one candidate (resuming its run folder if a crashed attempt left one)."""
    import shutil

    import optuna

    from effnet.data import DataSpec
    from effnet.train.recipe import resolve

    a, b, g = parse_candidate(cid)
    arch = candidate_arch(cfg, a, b, g)
    recipe = resolve(cfg.recipe).replace(**cfg.recipe_overrides).replace(seed=cfg.seed)
    data = DataSpec.from_dict(cfg.data)
    run_dir = out / "trials" / cid
    if run_dir.exists() and not (run_dir / "config.json").is_file():
        shutil.rmtree(run_dir)  # died before its first write: nothing to resume
    steps = rungs(cfg, recipe.epochs, recipe.schedule)
    metrics: dict[str, Any] = {}
    for i, epochs in enumerate(steps):
        again = (run_dir / "config.json").is_file()
        result = train_fn(
            None if again else arch,
            None if again else data,
            recipe.replace(epochs=epochs),
            run_dir,
            resume=again,
            progress=False,
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


# -- workers --------------------------------------------------------------------------------
def open_study(cfg: SearchConfig | None, storage: Any, name: str | None) -> tuple[Any, Any]:
    """Create or join the Optuna study; a joining worker takes the config stored in it."""
    import optuna

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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def repair(study: Any, ids: list[str], max_retries: int) -> int:
    """Fail trials left RUNNING by dead workers on this host, and re-queue every candidate
    that has only failed attempts (fewer than ``max_retries`` + 1) and none pending.

    Run when a worker starts, so an interrupted search (Ctrl-C, kill -9) resumes.
    """
    from optuna.trial import TrialState

    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if t.user_attrs.get("host") == host and pid is not None and not _alive(pid):
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    trials = study.get_trials(deepcopy=False)
    n = 0
    for cid in ids:
        mine = [t for t in trials if _candidate_of(t, ids) == cid]
        if any(t.state != TrialState.FAIL for t in mine) or not mine:
            continue
        if len(mine) <= max_retries:
            _requeue(study, mine[-1])
            n += 1
    return n


def _candidate_of(trial: Any, ids: list[str]) -> str | None:
    if trial.user_attrs.get("surplus"):
        return None
    if "candidate" in trial.params:
        return trial.params["candidate"]
    gid = trial.system_attrs.get("grid_id")
    return ids[gid] if gid is not None and gid < len(ids) else None


def _taken(study: Any, trial: Any, cid: str, ids: list[str]) -> bool:
    """Another trial already evaluated ``cid``, or is evaluating it and started first."""
    from optuna.trial import TrialState

    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    for t in study.get_trials(deepcopy=False, states=states):
        if t.number != trial.number and _candidate_of(t, ids) == cid:
            if t.state != TrialState.RUNNING or t.number < trial.number:
                return True
    return False


def work_remains(study: Any, ids: list[str]) -> bool:
    """A retry is queued, or some candidate has no trial yet."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    if any(t.state == TrialState.WAITING for t in trials):
        return True
    seen = {_candidate_of(t, ids) for t in trials}
    return any(cid not in seen for cid in ids)


def work(cfg: SearchConfig, study: Any, out: Path, train_fn: Any, log: Any = None) -> int:
    """Evaluate candidates until the grid is done; returns how many this worker trained."""
    import optuna

    ids = list(study.user_attrs["candidates"])
    done = 0

    def objective(trial: optuna.Trial) -> float:
        nonlocal done
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        retry = "retry_history" in study._storage.get_trial_system_attrs(trial._trial_id)
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
        repair(study, ids, cfg.max_retries)
        if not work_remains(study, ids):
            return done
        study.optimize(objective, catch=(Exception,), callbacks=[after], gc_after_trial=True)


def _surplus(study: Any, trial: Any, why: str) -> float:
    trial.set_user_attr("surplus", True)
    study.stop()
    raise _Surplus(f"trial {trial.number} not run: {why}")


class _Surplus(Exception):
    """A trial created after the whole grid was handed out (a race between workers)."""


# -- the whole search -----------------------------------------------------------------------
def run_search(
    cfg: SearchConfig | None,
    out: str | Path,
    *,
    storage: str | None = None,
    name: str | None = None,
    workers: int = 1,
    train_fn: Any = None,
    log: Any = None,
) -> Any:
    """Run (or join, or resume) a search; with ``workers`` > 1 also start that many - 1
    worker processes on this machine sharing the storage. Writes the outputs at the end."""
    import subprocess
    import sys

    from effnet.study.runner import default_train_fn
    from effnet.study.search_report import write_outputs

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    st = open_storage(storage, out)
    study, cfg = open_study(cfg, st, name)
    if storage is None:
        storage = str(out / "optuna.journal")
    cmd = [sys.executable, "-m", "effnet", "search-coefficients", "--join",
           "--storage", storage, "--name", study.study_name, "--out", str(out)]  # fmt: skip
    children = [subprocess.Popen(cmd) for _ in range(max(0, workers - 1))]
    train_fn = train_fn or default_train_fn()
    try:
        work(cfg, study, out, train_fn, log)
    finally:
        for c in children:
            c.wait()
    wait_for_others(cfg, study, out, train_fn, log)
    return write_outputs(cfg, study, out)


def wait_for_others(cfg: SearchConfig, study: Any, out: Path, train_fn: Any, log: Any) -> None:
    """Until no trial runs elsewhere: so every worker writes the complete results. Trials of
    dead workers are failed (heartbeat / dead pid) and retried here."""
    import time

    import optuna
    from optuna.trial import TrialState

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
        work(cfg, study, out, train_fn, log)
