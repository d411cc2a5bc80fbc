"""Confirmation: the best few candidates trained again for longer, each once (a short
proxy ranks noisily). An Optuna study of its own beside the search's, ``<name>-confirm``,
holding one queued trial per candidate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from effnet.archsearch.config import ArchSearchConfig, data_spec, recipe_of
from effnet.archsearch.objective import score
from effnet.archsearch.space import SearchSpace, sample
from effnet.archsearch.workers import record, repair, train_trial
from effnet.jobs.trials import claim, counted, run_until, surplus


def confirm(
    cfg: ArchSearchConfig,
    space: SearchSpace,
    study: Any,
    confirm_study: Any,
    storage: Any,
    out: Path,
    train_fn: Any,
    log: Any = None,
) -> None:
    """Re-train the ``confirm_top`` best distinct candidates at ``confirm_epoch_multiple`` x the
    epochs, each once, into ``confirm/<trial>`` (a run whose worker died is queued again
    and resumes its folder, as in the search)."""
    assert cfg.target_macs is not None
    sources = top_trials(study, cfg.confirm_top)
    queued = {t.user_attrs.get("source") for t in counted(confirm_study)}
    for t in sources:
        if t.number not in queued:
            confirm_study.enqueue_trial(t.params, user_attrs={"source": t.number})
    data, recipe = data_spec(cfg), recipe_of(cfg, cfg.confirm_epoch_multiple)

    def run_trial(trial: optuna.Trial) -> float:
        claim(trial)
        source = trial.user_attrs.get("source")
        if source is None:
            surplus(trial, "no candidate is queued for confirmation", confirm_study)
        for t in counted(confirm_study):
            alive = t.state != TrialState.FAIL
            if t.user_attrs.get("source") == source and t.number < trial.number and alive:
                surplus(trial, f"trial {source} is confirmed by {t.number}", confirm_study)
        arch = sample(space, trial, name=f"{cfg.name}-t{source}")
        if log:
            log(f"confirming trial {source} at {recipe.epochs:g} epochs")
        metrics = train_trial(trial, train_fn, arch, data, recipe, out / "confirm" / str(source))
        macs = study.get_trials(deepcopy=False)[source].user_attrs["macs"]
        top1 = float(metrics["minival_top1"])
        reward = score(top1 / 100, macs, cfg.target_macs, cfg.w, cfg.hard)
        record(trial, metrics, reward)
        return reward

    def queued_remain() -> bool:
        return any(t.state == TrialState.WAITING for t in counted(confirm_study))

    run_until(confirm_study, run_trial, queued_remain, lambda: repair(confirm_study, storage))


def top_trials(study: Any, k: int) -> list[Any]:
    """The ``k`` complete trials of highest reward, one per distinct architecture."""
    done = [t for t in counted(study)
            if t.state == TrialState.COMPLETE and "same_as" not in t.user_attrs
            and "reward" in t.user_attrs]  # fmt: skip
    return sorted(done, key=lambda t: -t.user_attrs["reward"])[:k]
