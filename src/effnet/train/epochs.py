"""The epochs of one training run: steps, logging, minival evaluation, checkpoints.

:func:`effnet.train.run.train` prepares the run (folder, data, model, state) and calls
:func:`run_epochs`; the steps themselves are :func:`effnet.train.loop.train_one_epoch`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from torch import nn

from effnet.data import DataSpec
from effnet.progress import Display, open_step_bar
from effnet.threads import ThreadGovernor
from effnet.train import checkpoint, distributed, runfolder
from effnet.train.loop import TrainState, batches, eval_batches, evaluate, train_one_epoch
from effnet.train.recipe import Recipe


def run_epochs(
    out: Path,
    recipe: Recipe,
    data: DataSpec,
    splits: Any,
    state: TrainState,
    ema: Any,
    t_eval: nn.Module,
    info: dict[str, Any],
    total_steps: int,
    progress: bool | Display,
    d: Any,
    governor: ThreadGovernor | None = None,
) -> None:
    """Epochs of steps until ``total_steps`` or the time limit: logs, evaluates on minival,
    keeps the best checkpoint and saves the last one at every epoch end."""
    ckpt_dir, metrics_path = out / runfolder.CHECKPOINTS, out / runfolder.METRICS
    steps_per_epoch, net = state.steps_per_epoch, state.raw

    def save(name: str = checkpoint.LAST) -> None:
        if d.main:
            info["metrics_bytes"] = metrics_path.stat().st_size
            checkpoint.save(ckpt_dir, checkpoint.training_state(state, info), name)

    started = time.perf_counter() - info["train_time_s"]
    time_up = recipe.max_time_s is not None and info["train_time_s"] >= recipe.max_time_s

    governor = governor or ThreadGovernor(adapt=False)
    governor.start()

    def on_step(s: TrainState, loss: float) -> bool:
        nonlocal time_up
        info["train_time_s"] = time.perf_counter() - started
        governor.tick()
        if d.main and s.step % recipe.log_every == 0:
            runfolder.log(
                metrics_path,
                {
                    "kind": "step",
                    "step": s.step,
                    "epoch": s.step / steps_per_epoch,
                    "loss": loss,
                    "avg_loss": s.loss_sum / s.loss_count,
                    "lr": s.optimizer.param_groups[0]["lr"],
                    "time_s": round(info["train_time_s"], 3),
                    **({"side": s.extra["side"]} if "side" in s.extra else {}),
                },
            )
        if recipe.max_time_s is not None:
            share = info["train_time_s"] / recipe.max_time_s
            s.time_fraction = distributed.broadcast_value(d, share)
            time_up = s.time_fraction >= 1.0
        epoch_end = s.step % steps_per_epoch == 0
        if recipe.checkpoint_every and s.step % recipe.checkpoint_every == 0 and not epoch_end:
            save()
            governor.pause()
        return time_up or s.step >= total_steps

    bar = open_step_bar(progress, total_steps, state.step) if d.main else None
    bad_said = 0
    while state.step < total_steps and not time_up:
        epoch, start = divmod(state.step, steps_per_epoch)
        sampler = distributed.EpochBatchSampler(
            len(splits.train), recipe.batch_size, recipe.seed, epoch, d, start
        )
        if bar is not None:
            bar.set_description(f"epoch {epoch + 1}")
        train_one_epoch(state, batches(splits.train, sampler, data.workers), on_step, bar)
        governor.pause()  # evaluation and checkpoints are not step times
        done = state.step % steps_per_epoch == 0 or state.step >= total_steps or time_up
        if not done:
            continue
        record: dict[str, Any] = {
            "kind": "epoch",
            "epoch": state.step / steps_per_epoch,
            "step": state.step,
            "train_loss": state.loss_sum / max(state.loss_count, 1),
            "time_s": round(info["train_time_s"], 3),
            "threads": governor.threads,
            **({"side": state.extra["side"]} if "side" in state.extra else {}),
        }
        state.loss_sum, state.loss_count = 0.0, 0
        last = state.step >= total_steps or time_up
        if len(splits.minival) == 0:
            if d.main:
                info["best_epoch"] = record["epoch"]
                _save_best(ckpt_dir, net, "model", record["epoch"], None)
        elif (epoch + 1) % recipe.eval_every == 0 or last:
            candidates = {"model": net, **({"ema": ema.module} if ema is not None else {})}
            for tag, m in candidates.items():
                r = evaluate(
                    m,
                    eval_batches(splits.minival, d, recipe.eval_batch_size, data.workers),
                    t_eval,
                    splits.num_classes,
                    d,
                    recipe,
                )
                record[f"{tag}_minival_top1"] = r["top1"]
                if r["top1"] > info["best_top1"] and d.main:
                    info["best_top1"], info["best_epoch"] = r["top1"], record["epoch"]
                    _save_best(ckpt_dir, m, tag, record["epoch"], r["top1"])
        if d.main:
            runfolder.log(metrics_path, record)
            bad_said = _say_bad_files(out, splits.bad_files, bad_said, bar)
            if bar is not None:
                bar.write(
                    " ".join(
                        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in record.items()
                        if k != "kind"
                    )
                )
        save()
    if bar is not None:
        bar.close()


def _save_best(
    folder: Path, model: nn.Module, source: str, epoch: float, top1: float | None
) -> None:
    state = {"model": model.state_dict(), "source": source, "epoch": epoch, "minival_top1": top1}
    checkpoint.save(folder, state, checkpoint.BEST)


def _say_bad_files(out: Path, found: list[str], said: int, bar: Any) -> int:
    """Write bad_files.txt as soon as an epoch finds unreadable images and say so on the
    console once per new batch of them; returns how many have been said."""
    count = runfolder.merge_bad_files(out, found) if found else said
    if count > said:
        listed = out / runfolder.BAD_FILES
        line = f"effnet: warning: {count} unreadable image(s) skipped; listed in {listed}"
        if bar is not None:
            bar.write(line)
        else:
            print(line, file=sys.stderr, flush=True)
    return max(count, said)
