"""The architecture search's workers: the Optuna studies they share, the trial each runs,
the repair of trials left by dead workers (the guarantees are in
:mod:`effnet.archsearch.search`)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from effnet.archsearch.config import ArchSearchConfig, data_spec, recipe_of, stored_form
from effnet.archsearch.objective import score
from effnet.archsearch.space import SearchSpace, sample
from effnet.errors import EffnetError, describe_error
from effnet.jobs.join import join_study
from effnet.jobs.storage import open_storage
from effnet.jobs.trials import (
    MAX_RETRIES,
    claim,
    counted,
    fail_dead_workers_trials,
    run_until,
    surplus,
)
from effnet.train import runfolder

CONFIG_ATTR = "archsearch"  # the study's user attribute holding the config
ATTEMPTS_PER_TRIAL = 5  # the search stops after trials x this many pruned or failed tries
RESULT_ATTRS = ("minival_top1", "test_top1", "params", "train_time_s", "epochs", "reward")


# -- the studies ----------------------------------------------------------------------------
def open_studies(
    cfg: ArchSearchConfig | None, url: str | None, out: Path, name: str | None
) -> tuple[Any, Any, Any, ArchSearchConfig]:
    """(storage, study, confirmation study, config): create or join the search; a joining
    worker takes the config stored in it. A config that differs (other than ``trials``)
    is refused.

    The worker that creates the study samples with the config's seed (a search run by one
    worker is reproducible); every other worker with a seed of its own."""
    storage = open_storage(url, out)
    study_name = name or (cfg.name if cfg else ArchSearchConfig.name)
    attrs = None if cfg is None else {CONFIG_ATTR: stored_form(cfg)}
    joined = join_study(storage, url, out, study_name, attrs=attrs, keys=(CONFIG_ATTR,),
                        what="architecture search", directions=_directions(cfg))  # fmt: skip
    stored = joined.attrs[CONFIG_ATTR]
    cfg = _agree(cfg, stored, study_name)
    seed = cfg.seed if joined.created else _worker_seed(cfg)
    study = optuna.load_study(study_name=study_name, storage=storage,
                              sampler=make_sampler(cfg, seed))  # fmt: skip
    if stored_form(cfg) != stored:
        study.set_user_attr(CONFIG_ATTR, stored_form(cfg))  # a new trial count
    confirm = optuna.create_study(
        study_name=f"{study_name}-confirm",
        storage=storage,
        sampler=optuna.samplers.RandomSampler(seed=cfg.seed),  # runs only queued trials
        direction="maximize",
        load_if_exists=True,
    )
    return storage, study, confirm, cfg


def _directions(cfg: ArchSearchConfig | None) -> list[str]:
    """The reward; or, for NSGA-II, minival top-1 and multiply-adds as two objectives."""
    return ["maximize", "minimize"] if cfg and cfg.sampler == "nsga2" else ["maximize"]


def _agree(cfg: ArchSearchConfig | None, stored: str, study_name: str) -> ArchSearchConfig:
    """The stored config, with ``cfg``'s trial count; any other difference is refused."""
    saved = ArchSearchConfig.from_json(stored)
    if cfg is None:
        return saved
    if stored_form(cfg.replace(trials=saved.trials)) != stored:
        raise EffnetError(
            f"architecture search {study_name!r} in this storage has a different config; "
            "join it without options (--join), or pick another --name or --out"
        )
    return saved.replace(trials=cfg.trials)  # the count may be raised or lowered


def make_sampler(cfg: ArchSearchConfig, seed: int) -> Any:
    """TPE on the reward; NSGA-II on (minival top-1, multiply-adds); or random."""
    if cfg.sampler == "tpe":
        return optuna.samplers.TPESampler(n_startup_trials=cfg.startup_trials, seed=seed)
    if cfg.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=max(2, cfg.startup_trials), seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def _worker_seed(cfg: ArchSearchConfig) -> int:
    """A joining or resuming worker's sampler seed: its own, so that it does not draw the
    same random candidates as the worker that created the search."""
    return (cfg.seed * 1_000_003 + os.getpid() * 7_919 + time.time_ns()) % 2**31


# -- trials ---------------------------------------------------------------------------------
def root_of(t: Any) -> int:
    """The trial whose run folder a trial trains in: itself, or the one it retries."""
    return int(t.user_attrs.get("retry_of", t.number))


def work_remains(study: Any, wanted: int) -> bool:
    """Fewer than ``wanted`` trials complete or running, or a retry waits (and the search
    has not given up)."""
    trials = counted(study)
    n = {s: sum(t.state == s for t in trials) for s in TrialState}
    tried = n[TrialState.COMPLETE] + n[TrialState.PRUNED] + n[TrialState.FAIL]
    if n[TrialState.COMPLETE] >= wanted or tried >= ATTEMPTS_PER_TRIAL * wanted:
        return False
    return n[TrialState.WAITING] > 0 or n[TrialState.COMPLETE] + n[TrialState.RUNNING] < wanted


def _surplus_reason(study: Any, trial: Any, wanted: int) -> str | None:
    """Why this trial must not run: ``wanted`` trials are complete or
    started before it, or an earlier retry of the same run exists."""
    root = root_of(trial)
    complete = running = 0
    for t in counted(study):
        if t.number == trial.number:
            continue
        if "retry_of" in trial.user_attrs and root_of(t) == root and t.number < trial.number:
            if t.state in (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE,
                           TrialState.PRUNED):  # fmt: skip
                return f"trial {t.number} already retries trial {root}"
        complete += t.state == TrialState.COMPLETE
        running += t.state == TrialState.RUNNING and t.number < trial.number
    if wanted and complete + running >= wanted:
        return f"{wanted} trials are complete or running"
    return None


def _same_as(study: Any, trial: Any) -> Any:
    """An earlier complete trial that trained the same choices (its result is reused)."""
    for t in counted(study):
        done = t.state == TrialState.COMPLETE and "minival_top1" in t.user_attrs
        if done and t.number != trial.number and t.params == trial.params:
            return t
    return None


def best_reward(study: Any) -> float | None:
    rewards = [t.user_attrs["reward"] for t in counted(study)
               if t.state == TrialState.COMPLETE and "reward" in t.user_attrs]  # fmt: skip
    return max(rewards) if rewards else None


def repair(study: Any, storage: Any) -> None:
    """Fail trials left RUNNING by dead workers on this host, and queue each interrupted
    trial again with the same choices (up to ``MAX_RETRIES`` times): the retry resumes the
    run folder the interrupted trial left. Trials that raised are not retried."""
    fail_dead_workers_trials(study, storage)
    trials = counted(study)
    for t in trials:
        interrupted = t.state == TrialState.FAIL and "error" not in t.user_attrs and t.params
        if not interrupted:
            continue
        family = [x for x in trials if root_of(x) == root_of(t)]
        latest = max(x.number for x in family) == t.number
        given_up = len(family) > MAX_RETRIES
        if latest and not given_up and all(x.state == TrialState.FAIL for x in family):
            keep = {k: v for k, v in t.user_attrs.items() if k == "source"}
            study.enqueue_trial(t.params, user_attrs={**keep, "retry_of": root_of(t)})


def train_once(train_fn: Any, arch: Any, data: Any, recipe: Any, run_dir: Path) -> dict:
    """The run's metrics: read back when it finished before (its worker died after
    training), else trained or resumed."""
    if runfolder.finished(run_dir):
        return json.loads((run_dir / runfolder.SUMMARY).read_text())
    return dict(runfolder.train_or_resume(train_fn, arch, data, recipe, run_dir).metrics)


def record(trial: Any, metrics: dict[str, Any], reward: float) -> None:
    """Keep a trained run's results and its reward on the trial."""
    for k in RESULT_ATTRS[:-1]:
        if metrics.get(k) is not None:
            trial.set_user_attr(k, metrics[k])
    trial.set_user_attr("reward", reward)


def train_trial(
    trial: Any, train_fn: Any, arch: Any, data: Any, recipe: Any, run_dir: Path
) -> dict[str, Any]:
    """``train_once``; an error is recorded on the trial, so ``repair`` does not retry it."""
    try:
        return train_once(train_fn, arch, data, recipe, run_dir)
    except Exception as e:
        trial.set_user_attr("error", describe_error(e))
        raise


def work(
    cfg: ArchSearchConfig,
    space: SearchSpace,
    shape: tuple[int, int],
    study: Any,
    storage: Any,
    out: Path,
    train_fn: Any,
    log: Any = None,
) -> int:
    """Run trials until ``cfg.trials`` are complete; returns how many this worker trained."""
    from effnet.memory import check_fits
    from effnet.study.study import macs as count_macs

    assert cfg.target_macs is not None
    target, multi = cfg.target_macs, cfg.sampler == "nsga2"
    data, recipe = data_spec(cfg), recipe_of(cfg)
    trained = 0

    def run_trial(trial: optuna.Trial) -> Any:
        nonlocal trained
        claim(trial)
        why = _surplus_reason(study, trial, cfg.trials)
        if why:
            surplus(trial, why, study)
        root = root_of(trial)
        arch = sample(space, trial, name=f"{cfg.name}-t{root}")
        cost = count_macs(arch, *shape)
        trial.set_user_attr("macs", cost)
        same = _same_as(study, trial)
        if same is not None:
            for k in RESULT_ATTRS:
                if k in same.user_attrs:
                    trial.set_user_attr(k, same.user_attrs[k])
            trial.set_user_attr("same_as", root_of(same))
            top1, reward = same.user_attrs["minival_top1"], same.user_attrs["reward"]
            return (top1, cost) if multi else reward
        bound, best = score(1.0, cost, target, cfg.w, cfg.hard), best_reward(study)
        if cfg.prune and best is not None and bound < best:
            trial.set_user_attr("upper_bound", bound)
            if not multi:  # TPE ranks a pruned trial by its last reported value
                trial.report(bound, 0)
            raise optuna.TrialPruned(
                f"{cost:,} multiply-adds score at most {bound:.4f} < the best {best:.4f}"
            )
        try:
            check_fits(arch, *shape)  # a network this machine cannot hold is not retried
        except EffnetError as e:
            trial.set_user_attr("error", describe_error(e))
            raise
        if log:
            retry = f" (retries trial {root})" if root != trial.number else ""
            log(f"trial {trial.number}: {cost / 1e6:.3f}M multiply-adds{retry}")
        metrics = train_trial(trial, train_fn, arch, data, recipe, out / "trials" / str(root))
        trained += 1
        top1 = float(metrics["minival_top1"])
        reward = score(top1 / 100, cost, target, cfg.w, cfg.hard)
        record(trial, metrics, reward)
        if log:
            log(f"trial {trial.number}: minival top-1 {top1:.2f}%, reward {reward:.4f}")
        return (top1, cost) if multi else reward

    run_until(study, run_trial, lambda: work_remains(study, cfg.trials),
              lambda: repair(study, storage))  # fmt: skip
    return trained
