"""What a finished run reports: the weights its test number comes from (the recipe's
``report_weights``), their test and minival top-1, the export in ``model/`` and
summary.json."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from effnet.arch import Architecture
from effnet.data import DataSpec
from effnet.errors import EffnetError
from effnet.io import atomic_write_text
from effnet.profile import count_macs, count_params
from effnet.train import checkpoint, distributed, runfolder
from effnet.train.loop import TrainState, eval_batches, evaluate
from effnet.train.recipe import MIN_MINIVAL_TO_CHOOSE, Recipe
from effnet.weights import save_pretrained


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]


def finish(
    out: Path,
    arch: Architecture,
    data: DataSpec,
    recipe: Recipe,
    splits: Any,
    net: nn.Module,
    t_eval: nn.Module,
    info: dict,
    state: TrainState,
    d: distributed.Dist,
) -> RunResult:
    """Evaluate the reported weights on test; export them; write summary.json.

    ``recipe.report_weights``: ``"final"`` the final EMA (the raw weights without EMA),
    ``"raw"`` the final raw weights, ``"best"`` the checkpoint with the highest minival
    top-1 (without minival images: the last epoch's raw weights, ``minival_top1`` null)."""

    distributed.barrier(d)
    chosen = reported_state(out, recipe)
    net.load_state_dict(chosen["model"])
    if "epoch" not in chosen:
        chosen["epoch"] = chosen["step"] / state.steps_per_epoch
    if chosen["minival_top1"] is None and len(splits.minival) > 0:
        chosen["minival_top1"] = evaluate(
            net, eval_batches(splits.minival, d, recipe.eval_batch_size, data.workers),
            t_eval, splits.num_classes, d, recipe,
        )["top1"]  # fmt: skip
    test = evaluate(
        net,
        eval_batches(splits.test, d, recipe.eval_batch_size, data.workers),
        t_eval,
        splits.num_classes,
        d,
        recipe,
    )
    metrics = {
        "model": arch.name,
        "minival_top1": chosen["minival_top1"],
        "test_top1": test["top1"],
        "test_top5": test["top5"],
        "test_loss": test["loss"],
        "best_epoch": chosen["epoch"],
        "best_source": chosen["source"],
        "selected_by": chosen["selected_by"],
        "report_weights": recipe.report_weights,
        "epochs": state.step / state.steps_per_epoch,
        "steps": state.step,
        "train_time_s": round(info["train_time_s"], 3),
        "params": count_params(net),
        "macs": count_macs(net, arch.resolution, splits.in_chans),
        "resolution": arch.resolution,
        "world_size": d.world,
    }
    if d.main:
        save_pretrained(net, out / runfolder.MODEL, class_names=splits.class_names, overwrite=True)
        metrics["bad_files"] = runfolder.merge_bad_files(out, splits.bad_files)
        atomic_write_text(out / runfolder.SUMMARY, json.dumps(metrics, indent=2) + "\n")
    distributed.barrier(d)
    return RunResult(out, metrics)


def reported_state(run: Path, recipe: Recipe) -> dict[str, Any]:
    """The reported weights of a run folder (``model``, ``source``, ``minival_top1``,
    ``selected_by``, ``step``): the final EMA or raw weights of its last checkpoint, or its
    minival-best checkpoint for ``report_weights`` "best"."""
    folder = run / runfolder.CHECKPOINTS
    if recipe.report_weights == "best" and (folder / checkpoint.BEST).exists():
        best = checkpoint.load_file(folder / checkpoint.BEST)
        by = "minival top-1" if best["minival_top1"] is not None else "last epoch"
        return {**best, "selected_by": by}
    last = checkpoint.load_latest(folder)
    ema = last.get("ema") if recipe.report_weights == "final" else None
    if ema is not None:  # an AveragedModel's state: the averaged network under "module."
        weights = {k[len("module.") :]: v for k, v in ema.items() if k.startswith("module.")}
    else:
        weights = last["model"]
    kind = "EMA" if ema is not None else "raw"
    return {"model": weights, "source": "ema" if ema is not None else "model",
            "minival_top1": None, "selected_by": f"final {kind} weights",
            "step": last["step"]}  # fmt: skip


def check_choice(recipe: Recipe, minival: int) -> None:
    """A test number from weights chosen on minival needs a minival that can choose."""
    if recipe.report_weights == "best" and 0 < minival < MIN_MINIVAL_TO_CHOOSE:
        raise EffnetError(
            f"recipe report_weights 'best' picks the weights on minival, which has {minival} "
            f"images (needs >= {MIN_MINIVAL_TO_CHOOSE}): raise data minival or report 'final'"
        )
