"""``train()``: a model, data and a recipe in; a durable run folder out.

Run folder::

    run.json             model architecture, data spec and fingerprint, recipe, world size
    metrics.jsonl        one record per ``log_every`` steps and per epoch
    checkpoints/         last.pt, previous.pt (exact resume), best.pt (by minival top-1)
    model/               the reported weights (recipe report_weights) as a save_pretrained export
    summary.json         final metrics (test top-1/top-5 of the reported weights, cost)
    bad_files.txt        unreadable images that were skipped, when any (only ever grows)
    .effnet-folder       marker: effnet made this folder; .effnet-lock: its writer's lock

Example::

    effnet train efficientnet_b0 --data fashion-mnist --recipe cpu --out runs/b0
    effnet train --resume runs/b0           # after a crash or kill: continues exactly
    effnet train --resume runs/b0 --epochs 20   # extend it (effnet.train.runfolder)
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from effnet.arch import Architecture
from effnet.data import BatchTransform, DataSpec, load_splits
from effnet.data.fingerprint import fingerprint
from effnet.errors import EffnetError
from effnet.io import atomic_write_text
from effnet.model import build
from effnet.progress import Display
from effnet.registry import get_arch
from effnet.rundir import ToolFolder
from effnet.threads import ThreadGovernor, fixed_from_env
from effnet.train import checkpoint, distributed, finetune, runfolder
from effnet.train.ema import adapted_decay, make_ema
from effnet.train.epochs import run_epochs
from effnet.train.loop import TrainState
from effnet.train.optim import make_optimizer, peak_lr
from effnet.train.outcome import RunResult, check_choice, finish
from effnet.train.recipe import Recipe
from effnet.train.seeds import augment_seed, random_streams, seed_everything


def _resume_threads(
    saved: dict | None, recipe: Recipe, threads: int | None, say: bool = True
) -> int | None:
    """A deterministic run resumes with the thread count it trained with (saved in its
    config): a resume with no ``--threads`` takes it; another count is said on stderr."""
    before = (saved or {}).get("threads")
    if not recipe.deterministic or not before:
        return threads
    if not isinstance(before, int) or isinstance(before, bool) or before < 1:
        return threads  # a hand-edited config: no count to keep
    if threads is None:
        return before
    if threads != before and say:
        print(f"effnet: warning: this run trained with {before} thread(s); resuming with "
              f"{threads} changes the order of sums, so it will not match an uninterrupted "
              "run bit for bit", file=sys.stderr)  # fmt: skip
    return threads


def transforms(arch: Architecture, recipe: Recipe) -> tuple[nn.Module, nn.Module]:
    """(train, eval) batch transforms at the model's resolution, with its preprocessing."""
    common = dict(interpolation=arch.interpolation)
    train = BatchTransform(
        arch.resolution, arch.mean, arch.std, train=True, **recipe.augment_args(), **common
    )
    evaluation = BatchTransform(
        arch.resolution, arch.mean, arch.std, train=False, crop_pct=arch.crop_pct, **common
    )
    return train, evaluation


def with_data_preprocessing(arch: Architecture, data: DataSpec) -> Architecture:
    """A source's own statistics (Fashion-MNIST's, a .npz file's) and no centre crop become
    part of the model's config, so the exported model carries the preprocessing it was
    trained with; an ImageFolder keeps the architecture's (effnet.data.sources)."""
    from effnet.data.sources import source_of

    stats = source_of(data.source).normalisation(data.source)
    if stats is None:
        return arch
    return arch.replace(mean=stats[0], std=stats[1], crop_pct=1.0)


def _apply_recipe(arch: Architecture, recipe: Recipe) -> Architecture:
    """The recipe's regularisation and BN momentum, where it sets them, replace the model's."""
    changes: dict[str, Any] = {k: getattr(recipe, k) for k in ("drop_path", "dropout")}
    if recipe.bn_momentum is not None:
        changes["norm"] = dataclasses.replace(arch.norm, momentum=recipe.bn_momentum)
    return arch.replace(**{k: v for k, v in changes.items() if v is not None})


def train(
    model: str | Architecture | None,
    data: DataSpec | None,
    recipe: Recipe | None,
    out: str | Path,
    *,
    resume: bool = False,
    model_overrides: dict | None = None,
    progress: bool | Display = True,
    init: str | Path | None = None,
    threads: int | None = None,
) -> RunResult:
    """Train ``model`` on ``data`` with ``recipe`` into the run folder ``out``.

    With ``resume=True`` (and ``model=None``) the model, data and recipe come from
    ``out/run.json`` and training continues from the last checkpoint exactly where it
    stopped. A given ``recipe`` or ``data`` may differ from the saved one only where
    :mod:`effnet.train.runfolder` allows (``epochs``, ``max_time_s``, ``workers``, each with
    a stated meaning); the data must match the fingerprint saved at the start. The folder
    is locked while training: a second writer gets a one-line error naming the holder.
    Under ``torchrun`` every rank calls this; only rank 0 writes.

    ``init`` (a model folder or checkpoint, :mod:`effnet.train.finetune`) fine-tunes: the
    run starts from its weights with a new classifier and keeps its preprocessing;
    ``model`` may then be None when the init names its architecture.

    ``threads`` fixes the intra-op thread count; by default a single-process CPU run uses
    the cores other processes leave free, re-checked as it trains (:mod:`effnet.threads`).
    """
    out = Path(out)
    d = distributed.setup()
    folder = None
    try:
        folder, saved = runfolder.open_run(out, resume, d.main)
        return _train(
            model, data, recipe, out, saved, folder, model_overrides or {}, progress, d, init,
            threads,
        )  # fmt: skip
    finally:
        if folder is not None:
            folder.unlock()
        distributed.teardown(d)


def _train(
    model: Any,
    data: Any,
    recipe: Any,
    out: Path,
    saved: dict[str, Any] | None,
    folder: ToolFolder,
    overrides: dict,
    progress: bool | Display,
    d: distributed.Dist,
    init: Any,
    threads: int | None = None,
) -> RunResult:
    arch, data, recipe, init = _resolve(model, data, recipe, saved, overrides, init)
    resuming = saved is not None and runfolder.start_from_checkpoint(out, recipe.checkpoint_every)
    if recipe.deterministic:
        torch.use_deterministic_algorithms(True)
    seed_everything(recipe.seed)
    splits = load_splits(data, arch.resolution)
    if saved is None:
        check_choice(recipe, len(splits.minival))
    data_print = fingerprint(splits)
    if saved is not None:
        runfolder.check_data(saved, data_print, out)
    net, arch, init, init_loaded = _network(arch, recipe, splits, init, resuming, d)
    seed_everything(recipe.seed + d.rank)  # drop path and dropout differ per rank, init not
    state, ema, t_eval = _training_state(net, arch, recipe, splits, init, d)
    if recipe.crop != "auto":  # its own stream: the same crops whatever the architecture
        state.transform.use_own_stream(augment_seed(recipe.seed, d.rank))
    total_steps = max(1, round(recipe.epochs * state.steps_per_epoch))

    threads = _resume_threads(saved, recipe, threads or fixed_from_env(), d.main)
    governor = ThreadGovernor(
        threads, adapt=d.world == 1 and d.device == "cpu" and not recipe.deterministic
    )
    ckpt_dir, metrics_path = out / runfolder.CHECKPOINTS, out / runfolder.METRICS
    info: dict[str, Any] = {
        "best_top1": -1.0,
        "best_epoch": -1,
        "train_time_s": 0.0,
        "metrics_bytes": 0,
    }
    if resuming:
        ck = checkpoint.load_latest(ckpt_dir)
        runfolder.check_length(recipe, ck["step"], state.steps_per_epoch)
        checkpoint.restore(state, ck)
        info = {k: ck[k] for k in info}
        if recipe.max_time_s:
            state.time_fraction = info["train_time_s"] / recipe.max_time_s
        if d.main and metrics_path.exists():
            with open(metrics_path, "r+") as f:
                f.truncate(info["metrics_bytes"])
            runfolder.save_resumed_recipe(out, saved, recipe, state.step)
    elif saved is not None:
        if d.main and metrics_path.exists():
            metrics_path.write_text("")  # killed before the first checkpoint: start over
        if d.main:
            runfolder.save_resumed_recipe(out, saved, recipe, state.step)
    elif d.main:
        folder.claim(False, runfolder.already_exists(out))
        config = {
            "model": arch.to_dict(),
            "data": data.to_dict(),
            "recipe": recipe.to_dict(),
            "world_size": d.world,
            "num_classes": splits.num_classes,
            "in_chans": splits.in_chans,
            "class_names": splits.class_names,
            "data_fingerprint": data_print,
            "init": init.to_dict() if init is not None else None,
            "init_loaded": init_loaded,
            # a deterministic run's intra-op threads: a resume keeps them (the order of a
            # sum depends on the count, so another count changes the numbers)
            "threads": governor.threads if recipe.deterministic else None,
            "random": random_streams(recipe, d.world),
            "augmentation": recipe.augmentation(),
        }
        atomic_write_text(out / runfolder.CONFIG, json.dumps(config, indent=2) + "\n")
        metrics_path.touch()
    run_epochs(
        out, recipe, data, splits, state, ema, t_eval, info, total_steps, progress, d, governor
    )
    return finish(out, arch, data, recipe, splits, net, t_eval, info, state, d)


def _resolve(
    model: Any, data: Any, recipe: Any, saved: dict[str, Any] | None, overrides: dict, init: Any
) -> tuple[Architecture, DataSpec, Recipe, Any]:
    """(architecture, data, recipe, init) of a new run, or of a resumed one from its config."""
    if saved is not None:
        if model is not None or init is not None:
            raise EffnetError("resume takes the model from the run folder (pass model=None)")
        init = finetune.saved_init(saved)
        arch = Architecture.from_dict(saved["model"])
        data = runfolder.resumed_data(DataSpec.from_dict(saved["data"]), data)
        recipe = runfolder.resumed_recipe(runfolder.recipe_of(saved), recipe)
    else:
        if (model is None and init is None) or data is None or recipe is None:
            raise EffnetError("train needs a model, data and a recipe (or resume=True)")
        init = finetune.as_init(init)
        if init is None:
            arch = with_data_preprocessing(get_arch(model, **overrides), data)
        else:  # the init's own preprocessing
            arch = finetune.init_architecture(model, init, overrides)
        arch = _apply_recipe(arch, recipe)
    finetune.check_recipe(recipe, init)
    return arch, data, recipe, init


def _network(
    arch: Architecture, recipe: Recipe, splits: Any, init: Any, resuming: bool, d: Any
) -> tuple[nn.Module, Architecture, Any, dict[str, Any] | None]:
    """The model, initialised as the recipe says (or from ``init``), on its device."""
    net = build(arch, num_classes=splits.num_classes, in_chans=splits.in_chans).to(d.device)
    if recipe.zero_init_head and isinstance(net.classifier, nn.Linear):
        nn.init.zeros_(net.classifier.weight)
    if recipe.zero_init_last:
        for m in net.modules():
            if hasattr(m, "zero_init_last"):
                m.zero_init_last()
    init_loaded = None
    if init is not None and not resuming:  # after the zero inits: the backbone is the init's
        init_loaded = finetune.load_init(net, init)
        init, arch = dataclasses.replace(init, source=init_loaded["source"]), net.arch
    if recipe.channels_last:
        net = net.to(memory_format=torch.channels_last)
    if recipe.sync_bn and d.enabled and d.device == "cpu":
        raise EffnetError("sync_bn needs GPUs: SyncBatchNorm has no CPU implementation")
    if recipe.sync_bn and d.enabled:
        net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
    return net, arch, init, init_loaded


def _training_state(
    net: nn.Module, arch: Architecture, recipe: Recipe, splits: Any, init: Any, d: Any
) -> tuple[TrainState, Any, nn.Module]:
    """(the loop's state: optimizer, EMA, wrapped model, transforms; the EMA; eval transform)."""
    steps_per_epoch = len(splits.train) // recipe.batch_size
    if steps_per_epoch < 1:
        raise EffnetError(f"{len(splits.train)} training images < one batch of {recipe.batch_size}")
    total_steps = max(1, round(recipe.epochs * steps_per_epoch))
    ema = make_ema(net, adapted_decay(total_steps, recipe.ema_decay)) if recipe.ema else None
    freezer = finetune.Freezer(net, recipe, steps_per_epoch) if init is not None else None
    if freezer is not None:
        freezer.freeze_bn_parameters()  # before the optimizer: frozen BN is not in it
    optimizer = make_optimizer(net, recipe, peak_lr(recipe))
    runner: nn.Module = net
    if d.enabled:
        ids = [d.local_rank] if d.device.startswith("cuda") else None
        unused = recipe.freeze_epochs > 0  # the frozen backbone gets no gradients
        runner = nn.parallel.DistributedDataParallel(
            net, device_ids=ids, find_unused_parameters=unused
        )
    if recipe.compile:
        runner = torch.compile(runner)
    t_train, t_eval = transforms(arch, recipe)
    t_train, t_eval = t_train.to(d.device), t_eval.to(d.device)
    state = TrainState(
        runner, net, ema, optimizer, t_train, recipe, steps_per_epoch, peak_lr(recipe), d,
        prepare=freezer if freezer is not None and freezer.active else None,
    )  # fmt: skip
    return state, ema, t_eval


def epochs_for(seconds: float, step_seconds: float, steps_per_epoch: int) -> float:
    """How many epochs fit in ``seconds`` at ``step_seconds`` per step (for time limit)."""
    return max(1.0, math.floor(seconds / (step_seconds * steps_per_epoch) * 10) / 10)
