"""The coefficient search's work queue on :mod:`effnet.jobs`: the study it creates or
joins, the trial that evaluates one candidate, and the repair that queues a failed
candidate again (the guarantees are in :mod:`effnet.study.search`)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
from optuna.trial import TrialState

from effnet.errors import EffnetError
from effnet.jobs import trials
from effnet.jobs.join import join_study
from effnet.jobs.storage import open_storage
from effnet.study.coefficients import (
    SearchConfig,
    candidate_id,
    evaluate_candidate,
    grid,
    parse_candidate,
)

KEYS = ("config", "candidates")  # the study's user attributes, stored when it is created


def requeue(study: Any, trial: Any) -> None:
    """Put a failed trial's candidate back in the queue, unless it failed too often."""

    if trial.user_attrs.get(trials.SURPLUS) or "candidates" not in study.user_attrs:
        return  # not a coefficient search's trial (an RDB storage calls this for any)
    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    config = json.loads(study.user_attrs.get("config", "{}"))
    if len(history) > config.get("max_retries", 2):
        return
    params, dists = dict(trial.params), dict(trial.distributions)
    if "candidate" not in params:  # failed before choosing: take the grid's choice
        ids = list(study.user_attrs["candidates"])
        cid = candidate_of(trial, grid_order(ids, config.get("seed", 0)))
        if cid is None:
            return
        params = {"candidate": cid}
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


def open_search(
    cfg: SearchConfig | None, url: str | None, out: Path, name: str | None
) -> tuple[Any, Any, SearchConfig]:
    """(storage, study, config): create the search's study or join it; a joining worker
    takes the config stored in it, one with a config of its own must agree with it."""
    storage = open_storage(url, out, on_stale=requeue)
    study_name = name or (cfg.name if cfg else SearchConfig.name)
    attrs = None
    if cfg is not None:
        ids = [candidate_id(*c) for c in grid(cfg.step, cfg.tolerance)]
        attrs = {"config": cfg.to_json(indent=None, sort_keys=True), "candidates": ids}
    joined = join_study(storage, url, out, study_name, attrs=attrs, keys=KEYS,
                        what="search", direction="maximize")  # fmt: skip
    saved = SearchConfig.from_json(joined.attrs["config"])
    if cfg is not None and cfg != saved:
        raise EffnetError(
            f"search {study_name!r} in this storage has a different config; "
            "join it without options or pick another --name"
        )
    sampler = grid_sampler(list(joined.attrs["candidates"]), saved.seed)
    pruner = optuna.pruners.PercentilePruner(25.0, n_startup_trials=4, n_warmup_steps=0)
    study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler,
                              pruner=pruner)  # fmt: skip
    return storage, study, saved


def grid_sampler(ids: list[str], seed: int) -> optuna.samplers.GridSampler:
    return optuna.samplers.GridSampler({"candidate": ids}, seed=seed)


def grid_order(ids: list[str], seed: int) -> list[str]:
    """The candidate of each grid id, as the search's sampler assigns them: Optuna's
    GridSampler shuffles its grid by the seed, so grid id i is not ``ids[i]``. Asked of
    the sampler itself (its public ``sample_independent`` reads only the grid id)."""
    sampler = grid_sampler(ids, seed)
    dist = optuna.distributions.CategoricalDistribution(ids)
    return [
        sampler.sample_independent(
            None,
            SimpleNamespace(system_attrs={"grid_id": i}),  # type: ignore[arg-type]
            "candidate",
            dist,
        )  # fmt: skip
        for i in range(len(ids))
    ]


def repair(study: Any, storage: Any, order: list[str], max_retries: int) -> int:
    """Fail trials left RUNNING by dead workers on this host, and re-queue every candidate
    that has only failed attempts (fewer than ``max_retries`` + 1) and none pending.

    Run when a worker starts, so an interrupted search (Ctrl-C, kill -9) resumes.
    """

    trials.fail_dead_workers_trials(study, storage)
    every = study.get_trials(deepcopy=False)
    n = 0
    for cid in order:
        mine = [t for t in every if candidate_of(t, order) == cid]
        if any(t.state != TrialState.FAIL for t in mine) or not mine:
            continue
        if len(mine) <= max_retries:
            requeue(study, mine[-1])
            n += 1
    return n


def candidate_of(trial: Any, order: list[str]) -> str | None:
    """A trial's candidate: its parameter once chosen, before that its grid id's
    (``order``: :func:`grid_order`); None for a surplus trial."""
    if trial.user_attrs.get(trials.SURPLUS):
        return None
    if "candidate" in trial.params:
        return trial.params["candidate"]
    gid = trial.system_attrs.get("grid_id")
    return order[gid] if gid is not None and gid < len(order) else None


def work_remains(study: Any, order: list[str]) -> bool:
    """A retry is queued, or some candidate has no trial yet."""

    every = study.get_trials(deepcopy=False)
    if any(t.state == TrialState.WAITING for t in every):
        return True
    seen = {candidate_of(t, order) for t in every}
    return any(cid not in seen for cid in order)


def work(
    cfg: SearchConfig, study: Any, storage: Any, out: Path, train_fn: Any, log: Any = None
) -> int:
    """Evaluate candidates until the grid is done; returns how many this worker trained."""

    ids = list(study.user_attrs["candidates"])
    order = grid_order(ids, cfg.seed)  # candidate_of: the grid id's candidate
    done = 0

    def objective(trial: optuna.Trial) -> float:
        nonlocal done
        trials.claim(trial)
        retry = "retry_history" in trials.system_attrs(storage, study, trial)
        cid = trial.suggest_categorical("candidate", ids)
        if trials.taken(study, trial, cid, lambda t: candidate_of(t, order)):
            trials.surplus(trial, f"{cid} is taken by another trial", study)
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
        if trial.state == TrialState.FAIL:
            requeue(study, trial)

    trials.run_until(study, objective, lambda: work_remains(study, order),
              lambda: repair(study, storage, order, cfg.max_retries), after)  # fmt: skip
    return done


def wait(cfg: SearchConfig, study: Any, storage: Any, out: Path, train_fn: Any, log: Any) -> None:
    """Until no trial runs elsewhere, taking over the candidates of workers that die."""
    trials.wait_for_others(study, lambda: work(cfg, study, storage, out, train_fn, log), log)
