"""One epoch of training and one pass of evaluation; no files, no argument parsing."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, Sampler, Subset

from effnet.errors import EffnetError
from effnet.train import distributed
from effnet.train.distributed import Dist
from effnet.train.optim import fraction_done, lr_factor, set_lr, stage_side
from effnet.train.recipe import Recipe


class NonFiniteLoss(EffnetError):
    """The loss became NaN or inf; the run stops and keeps its last good checkpoint."""


@dataclass
class TrainState:
    """What changes while training: the modules plus counters that a checkpoint restores."""

    model: nn.Module  # what forward/backward run on (DDP-wrapped and/or compiled)
    raw: nn.Module  # the plain Network (its state_dict is saved, EMA follows it)
    ema: nn.Module | None
    optimizer: torch.optim.Optimizer
    transform: nn.Module  # train-mode BatchTransform
    recipe: Recipe
    steps_per_epoch: int
    peak_lr: float
    dist: Dist
    step: int = 0  # optimizer steps done
    loss_sum: float = 0.0  # this epoch so far (for the epoch mean across a resume)
    loss_count: int = 0
    time_fraction: float = 0.0  # elapsed / max_time_s (same on every rank)
    prepare: Callable[[TrainState], None] | None = None  # before each step (fine-tune freezing)
    extra: dict[str, Any] = field(default_factory=dict)


def make_loss(recipe: Recipe) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), target, label_smoothing=recipe.label_smoothing)

    return loss


def autocast(recipe: Recipe, device: str) -> contextlib.AbstractContextManager:
    if recipe.amp == "bf16":
        return torch.autocast(device.split(":")[0], dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _base(dataset: Dataset) -> tuple[Dataset, torch.Tensor | None]:
    """The underlying dataset and index map through any Subset wrappers."""
    index = None
    while isinstance(dataset, Subset):
        idx = torch.as_tensor(dataset.indices)
        index = idx if index is None else idx[index]
        dataset = dataset.dataset
    return dataset, index


def batches(
    dataset: Dataset, sampler: Sampler[list[int]], workers: int = 0
) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """(uint8 images, labels) per index batch; in-memory tensors are gathered in one call.

    The DataLoader gets its own generator so creating it never draws from the global RNG
    (which a checkpoint restores for the augmentations).
    """
    base, index = _base(dataset)
    if hasattr(base, "images") and hasattr(base, "labels"):

        def gather() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            for b in sampler:
                idx = torch.as_tensor(b) if index is None else index[b]
                yield base.images[idx], base.labels[idx].long()

        return gather()
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=workers,
        persistent_workers=False,
        generator=torch.Generator().manual_seed(0),
        pin_memory=torch.cuda.is_available(),
    )


def train_one_epoch(
    state: TrainState,
    data: Iterable[tuple[torch.Tensor, torch.Tensor]],
    on_step: Callable[[TrainState, float], bool],
    progress: Any = None,
) -> None:
    """Optimizer steps over ``data`` until it ends or ``on_step`` returns True (stop).

    ``on_step(state, loss)`` runs after every step with the loss averaged over ranks; it
    logs, checkpoints and decides about time limit. A NaN/inf loss raises
    :class:`NonFiniteLoss` before the weights are touched.
    """
    r, d = state.recipe, state.dist
    loss_fn = make_loss(r)
    state.model.train()
    state.transform.train()
    memory = torch.channels_last if r.channels_last else torch.contiguous_format
    for images, labels in data:
        t0 = time.perf_counter()
        images = images.to(d.device, non_blocking=True)
        labels = labels.to(d.device, non_blocking=True)
        if state.prepare is not None:
            state.prepare(state)
        factor = lr_factor(state.step, state.steps_per_epoch, r, state.time_fraction)
        set_lr(state.optimizer, state.peak_lr * factor)
        side = None
        if r.resize_stages > 1:
            done = fraction_done(state.step, state.steps_per_epoch, r, state.time_fraction)
            side = stage_side(state.transform.resolution, done, r.resize_stages, r.resize_start)
            state.extra["side"] = side  # logged with the step and epoch records
        with torch.no_grad():
            x = state.transform(images, side).contiguous(memory_format=memory)
        with autocast(r, d.device):
            loss = loss_fn(state.model(x), labels)
        value = distributed.all_sum(d, loss.detach().clone()).item() / d.world
        if not math.isfinite(value):
            raise NonFiniteLoss(
                f"loss is {value} at step {state.step + 1} (epoch "
                f"{state.step // state.steps_per_epoch + 1}); stopped, last good checkpoint kept"
            )
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if r.grad_clip:
            nn.utils.clip_grad_norm_(state.raw.parameters(), r.grad_clip)
        state.optimizer.step()
        if state.ema is not None:
            state.ema.update_parameters(state.raw)
        state.step += 1
        state.loss_sum += value
        state.loss_count += 1
        if progress is not None:
            rate = len(labels) * d.world / max(time.perf_counter() - t0, 1e-9)
            progress.update(1)
            progress.set_postfix(loss=f"{value:.3f}", img_s=f"{rate:.0f}", refresh=False)
        if on_step(state, value):
            return


def eval_batches(
    dataset: Dataset, d: Dist, batch_size: int, workers: int = 0
) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """This rank's shard of ``dataset`` in order, in batches of ``batch_size``."""
    shard = distributed.ShardSampler(len(dataset), d)
    sampler = torch.utils.data.BatchSampler(shard, batch_size, drop_last=False)
    return batches(dataset, sampler, workers)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Iterable[tuple[torch.Tensor, torch.Tensor]],
    transform: nn.Module,
    num_classes: int,
    d: Dist,
    recipe: Recipe | None = None,
) -> dict[str, Any]:
    """Top-1, top-5, mean loss and the confusion matrix (rows: true class), summed over ranks."""
    model.eval()
    transform.eval()
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.float64, device=d.device)
    sums = torch.zeros(3, dtype=torch.float64, device=d.device)  # top5 hits, loss sum, count
    k = min(5, num_classes)
    channels_last = recipe is None or recipe.channels_last
    memory = torch.channels_last if channels_last else torch.contiguous_format
    for images, labels in data:
        images, labels = images.to(d.device), labels.to(d.device)
        x = transform(images).contiguous(memory_format=memory)
        with autocast(recipe, d.device) if recipe else contextlib.nullcontext():
            logits = model(x).float()
        pred = logits.argmax(1)
        confusion.index_put_(
            (labels, pred), torch.ones_like(pred, dtype=torch.float64), accumulate=True
        )
        top5 = logits.topk(k, 1).indices.eq(labels[:, None]).any(1)
        loss = F.cross_entropy(logits, labels, reduction="sum").double()
        sums += torch.stack([top5.sum().double(), loss, loss.new_tensor(float(len(labels)))])
    distributed.all_sum(d, confusion)
    distributed.all_sum(d, sums)
    n = max(sums[2].item(), 1.0)
    return {
        "top1": 100.0 * confusion.diagonal().sum().item() / n,
        "top5": 100.0 * sums[0].item() / n,
        "loss": sums[1].item() / n,
        "images": int(sums[2].item()),
        "confusion": confusion.long().tolist(),
    }
