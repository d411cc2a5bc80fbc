"""``train()``: a model, data and a recipe in; a durable run folder out.

Run folder::

    config.json          model architecture, data spec, recipe, world size (resolved)
    metrics.jsonl        one record per ``log_every`` steps and per epoch
    checkpoints/         last.pt, previous.pt (exact resume), best.pt (by minival top-1)
    model/               the best weights as a save_pretrained export
    summary.json         final metrics (test top-1/top-5 of the best checkpoint, cost)
    bad_files.txt        unreadable images that were skipped, when any

Example::

    effnet train efficientnet_b0 --data fashion-mnist --recipe cpu --out runs/b0
    effnet train --resume runs/b0           # after a crash or kill: continues exactly
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from effnet.arch import Architecture
from effnet.data import BatchTransform, DataSpec, load_splits
from effnet.errors import EffnetError
from effnet.io import atomic_write_text
from effnet.model import build
from effnet.registry import get_arch
from effnet.train import checkpoint, distributed
from effnet.train.ema import adapted_decay, make_ema
from effnet.train.loop import TrainState, batches, eval_batches, evaluate, train_one_epoch
from effnet.train.optim import make_optimizer, peak_lr
from effnet.train.recipe import Recipe


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def transforms(arch: Architecture, recipe: Recipe) -> tuple[nn.Module, nn.Module]:
    """(train, eval) batch transforms at the model's resolution, with its preprocessing."""
    common = dict(interpolation=arch.interpolation)
    train = BatchTransform(
        arch.resolution, arch.mean, arch.std, train=True, randaugment=recipe.randaugment,
        random_erasing=recipe.random_erasing, hflip=recipe.hflip,
        crop_padding=recipe.crop_padding, **common,
    )  # fmt: skip
    evaluation = BatchTransform(
        arch.resolution, arch.mean, arch.std, train=False, crop_pct=arch.crop_pct, **common
    )
    return train, evaluation


def with_data_preprocessing(arch: Architecture, data: DataSpec) -> Architecture:
    """Fashion-MNIST's own statistics and no centre crop become part of the model's config,
    so the exported model carries the preprocessing it was trained with."""
    if not data.is_fashion_mnist:
        return arch
    from effnet.data import FASHION_MNIST_MEAN, FASHION_MNIST_STD

    return arch.replace(mean=tuple(FASHION_MNIST_MEAN), std=tuple(FASHION_MNIST_STD), crop_pct=1.0)


def _apply_recipe(arch: Architecture, recipe: Recipe) -> Architecture:
    """The recipe's regularisation and BN momentum, where it sets them, replace the model's."""
    changes: dict[str, Any] = {k: getattr(recipe, k) for k in ("drop_path", "dropout")}
    if recipe.bn_momentum is not None:
        changes["norm"] = dataclasses.replace(arch.norm, momentum=recipe.bn_momentum)
    return arch.replace(**{k: v for k, v in changes.items() if v is not None})


def _prepare_folder(out: Path, resume: bool) -> dict[str, Any] | None:
    config = out / "config.json"
    if resume:
        if not config.is_file():
            raise EffnetError(f"cannot resume: {out} has no config.json (not a run folder)")
        return json.loads(config.read_text())
    if out.exists() and any(out.iterdir()):
        raise EffnetError(f"run folder {out} already exists (pass --resume {out} to continue)")
    return None


def _log(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _state_dict(state: TrainState, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": state.raw.state_dict(),
        "ema": state.ema.state_dict() if state.ema is not None else None,
        "optimizer": state.optimizer.state_dict(),
        "step": state.step,
        "loss_sum": state.loss_sum,
        "loss_count": state.loss_count,
        "rng": checkpoint.rng_state(),
        **extra,
    }


def train(
    model: str | Architecture | None,
    data: DataSpec | None,
    recipe: Recipe | None,
    out: str | Path,
    *,
    resume: bool = False,
    model_overrides: dict | None = None,
    progress: bool = True,
) -> RunResult:
    """Train ``model`` on ``data`` with ``recipe`` into the run folder ``out``.

    With ``resume=True`` the model, data and recipe come from ``out/config.json`` (a given
    ``recipe`` replaces the saved one, e.g. to extend ``epochs``) and training continues
    from the last checkpoint exactly where it stopped. Under ``torchrun`` every rank calls
    this; only rank 0 writes.
    """
    out = Path(out)
    d = distributed.setup()
    try:
        return _train(model, data, recipe, out, resume, model_overrides or {}, progress, d)
    finally:
        distributed.teardown(d)


def _train(
    model: Any,
    data: Any,
    recipe: Any,
    out: Path,
    resume: bool,
    overrides: dict,
    progress: bool,
    d: distributed.Dist,
) -> RunResult:
    saved = _prepare_folder(out, resume)
    if saved is not None:
        arch = Architecture.from_dict(saved["model"])
        data = DataSpec.from_dict(saved["data"])
        recipe = recipe or Recipe.from_dict(saved["recipe"])
    else:
        if model is None or data is None or recipe is None:
            raise EffnetError("train needs a model, data and a recipe (or resume=True)")
        arch = get_arch(model, **overrides)
        arch = with_data_preprocessing(_apply_recipe(arch, recipe), data)
    if recipe.deterministic:
        torch.use_deterministic_algorithms(True)
    _seed_everything(recipe.seed)
    splits = load_splits(data, arch.resolution)
    net = build(arch, num_classes=splits.num_classes, in_chans=splits.in_chans).to(d.device)
    if recipe.zero_init_head and isinstance(net.classifier, nn.Linear):
        nn.init.zeros_(net.classifier.weight)
    if recipe.zero_init_last:
        for m in net.modules():
            if hasattr(m, "zero_init_last"):
                m.zero_init_last()
    if recipe.channels_last:
        net = net.to(memory_format=torch.channels_last)
    if recipe.sync_bn and d.enabled and d.device == "cpu":
        raise EffnetError("sync_bn needs GPUs: SyncBatchNorm has no CPU implementation")
    if recipe.sync_bn and d.enabled:
        net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
    _seed_everything(recipe.seed + d.rank)  # augmentation differs per rank, init does not

    steps_per_epoch = len(splits.train) // recipe.batch_size
    if steps_per_epoch < 1:
        raise EffnetError(f"{len(splits.train)} training images < one batch of {recipe.batch_size}")
    total_steps = max(1, round(recipe.epochs * steps_per_epoch))
    ema = make_ema(net, adapted_decay(total_steps, recipe.ema_decay)) if recipe.ema else None
    optimizer = make_optimizer(net, recipe, peak_lr(recipe))
    runner: nn.Module = net
    if d.enabled:
        ids = [d.local_rank] if d.device.startswith("cuda") else None
        runner = nn.parallel.DistributedDataParallel(net, device_ids=ids)
    if recipe.compile:
        runner = torch.compile(runner)
    t_train, t_eval = transforms(arch, recipe)
    t_train, t_eval = t_train.to(d.device), t_eval.to(d.device)
    state = TrainState(
        runner, net, ema, optimizer, t_train, recipe, steps_per_epoch, peak_lr(recipe), d
    )

    ckpt_dir, metrics_path = out / "checkpoints", out / "metrics.jsonl"
    info: dict[str, Any] = {
        "best_top1": -1.0,
        "best_epoch": -1,
        "train_time_s": 0.0,
        "metrics_bytes": 0,
    }
    if saved is not None and (ckpt_dir / checkpoint.LAST).exists():
        ck = checkpoint.load_latest(ckpt_dir)
        net.load_state_dict(ck["model"])
        if ema is not None and ck["ema"] is not None:
            ema.load_state_dict(ck["ema"])
        optimizer.load_state_dict(ck["optimizer"])
        state.step, state.loss_sum, state.loss_count = ck["step"], ck["loss_sum"], ck["loss_count"]
        info = {k: ck[k] for k in info}
        if recipe.max_time_s:
            state.time_fraction = info["train_time_s"] / recipe.max_time_s
        checkpoint.set_rng_state(ck["rng"])
        if d.main and metrics_path.exists():
            with open(metrics_path, "r+") as f:
                f.truncate(info["metrics_bytes"])
    elif saved is not None:
        if d.main and metrics_path.exists():
            metrics_path.write_text("")  # killed before the first checkpoint: start over
    elif d.main:
        out.mkdir(parents=True, exist_ok=True)
        config = {
            "model": arch.to_dict(),
            "data": data.to_dict(),
            "recipe": recipe.to_dict(),
            "world_size": d.world,
            "num_classes": splits.num_classes,
            "in_chans": splits.in_chans,
            "class_names": splits.class_names,
        }
        atomic_write_text(out / "config.json", json.dumps(config, indent=2) + "\n")
        metrics_path.touch()

    def save(name: str = checkpoint.LAST) -> None:
        if d.main:
            info["metrics_bytes"] = metrics_path.stat().st_size
            checkpoint.save(ckpt_dir, _state_dict(state, info), name)

    started = time.perf_counter() - info["train_time_s"]
    time_up = False

    def on_step(s: TrainState, loss: float) -> bool:
        nonlocal time_up
        info["train_time_s"] = time.perf_counter() - started
        if d.main and s.step % recipe.log_every == 0:
            _log(
                metrics_path,
                {
                    "kind": "step",
                    "step": s.step,
                    "epoch": s.step / steps_per_epoch,
                    "loss": loss,
                    "avg_loss": s.loss_sum / s.loss_count,
                    "lr": s.optimizer.param_groups[0]["lr"],
                    "time_s": round(info["train_time_s"], 3),
                },
            )
        if recipe.max_time_s is not None:
            share = info["train_time_s"] / recipe.max_time_s
            s.time_fraction = distributed.broadcast_value(d, share)
            time_up = s.time_fraction >= 1.0
        epoch_end = s.step % steps_per_epoch == 0
        if recipe.checkpoint_every and s.step % recipe.checkpoint_every == 0 and not epoch_end:
            save()
        return time_up or s.step >= total_steps

    bar = None
    if progress and d.main:
        from tqdm import tqdm

        bar = tqdm(
            total=total_steps, initial=state.step, unit="step", dynamic_ncols=True, file=sys.stderr
        )
    while state.step < total_steps and not time_up:
        epoch, start = divmod(state.step, steps_per_epoch)
        sampler = distributed.EpochBatchSampler(
            len(splits.train), recipe.batch_size, recipe.seed, epoch, d, start
        )
        if bar is not None:
            bar.set_description(f"epoch {epoch + 1}")
        train_one_epoch(state, batches(splits.train, sampler, data.workers), on_step, bar)
        done = state.step % steps_per_epoch == 0 or state.step >= total_steps or time_up
        if not done:
            continue
        record: dict[str, Any] = {
            "kind": "epoch",
            "epoch": state.step / steps_per_epoch,
            "step": state.step,
            "train_loss": state.loss_sum / max(state.loss_count, 1),
            "time_s": round(info["train_time_s"], 3),
        }
        state.loss_sum, state.loss_count = 0.0, 0
        last = state.step >= total_steps or time_up
        if (epoch + 1) % recipe.eval_every == 0 or last:
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
                    checkpoint.save(
                        ckpt_dir,
                        {
                            "model": m.state_dict(),
                            "source": tag,
                            "epoch": record["epoch"],
                            "minival_top1": r["top1"],
                        },
                        checkpoint.BEST,
                    )
        if d.main:
            _log(metrics_path, record)
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
    return _finish(out, arch, data, recipe, splits, net, t_eval, info, state, d)


def _finish(
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
    """Evaluate the best checkpoint on minival and test; export it; write summary.json."""
    from effnet.profile import count_macs, count_params

    distributed.barrier(d)
    best = checkpoint.load_file(out / "checkpoints" / checkpoint.BEST)
    net.load_state_dict(best["model"])
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
        "minival_top1": best["minival_top1"],
        "test_top1": test["top1"],
        "test_top5": test["top5"],
        "test_loss": test["loss"],
        "best_epoch": best["epoch"],
        "best_source": best["source"],
        "epochs": state.step / state.steps_per_epoch,
        "steps": state.step,
        "train_time_s": round(info["train_time_s"], 3),
        "params": count_params(net),
        "macs": count_macs(net, arch.resolution, splits.in_chans),
        "resolution": arch.resolution,
        "world_size": d.world,
    }
    if d.main:
        from effnet.weights import save_pretrained

        save_pretrained(net, out / "model", class_names=splits.class_names, overwrite=True)
        bad = splits.bad_files
        if bad:
            atomic_write_text(out / "bad_files.txt", "\n".join(bad) + "\n")
        metrics["bad_files"] = len(bad)
        atomic_write_text(out / "summary.json", json.dumps(metrics, indent=2) + "\n")
    distributed.barrier(d)
    return RunResult(out, metrics)


def epochs_for(seconds: float, step_seconds: float, steps_per_epoch: int) -> float:
    """How many epochs fit in ``seconds`` at ``step_seconds`` per step (for time budgets)."""
    return max(1.0, math.floor(seconds / (step_seconds * steps_per_epoch) * 10) / 10)
