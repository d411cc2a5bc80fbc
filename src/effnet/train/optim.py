"""RMSProp with TensorFlow semantics, parameter groups, and the learning-rate schedule.

``torch.optim.RMSprop`` cannot reproduce the paper's optimizer: it adds epsilon outside
the square root (``g / (sqrt(v) + eps)``), while TensorFlow divides by ``sqrt(v + eps)``;
with the paper's eps = 1e-3 that changes early steps by orders of magnitude. TF also starts
the mean square at 1 (not 0) and keeps the learning rate inside the momentum buffer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from effnet.train.finetune import is_head
from effnet.train.recipe import Recipe


class RMSpropTF(torch.optim.Optimizer):
    """TF1 ``RMSPropOptimizer``: ms = rho*ms + (1-rho)*g^2; mom = m*mom + lr*g/sqrt(ms+eps)."""

    def __init__(
        self,
        params: Iterable,
        lr: float = 0.016,
        rho: float = 0.9,
        momentum: float = 0.9,
        eps: float = 1e-3,
        weight_decay: float = 0.0,
    ) -> None:
        defaults = dict(lr=lr, rho=rho, momentum=momentum, eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: None = None) -> None:
        for group in self.param_groups:
            lr, rho, mom, eps, wd = (
                group[k] for k in ("lr", "rho", "momentum", "eps", "weight_decay")
            )
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.add(p, alpha=wd) if wd else p.grad
                state = self.state[p]
                if not state:
                    state["square_avg"] = torch.ones_like(p)
                    state["momentum_buffer"] = torch.zeros_like(p)
                square_avg, buf = state["square_avg"], state["momentum_buffer"]
                square_avg.mul_(rho).addcmul_(grad, grad, value=1 - rho)
                step = grad / square_avg.add(eps).sqrt_()
                if mom > 0:
                    buf.mul_(mom).add_(step, alpha=lr)
                    p.sub_(buf)
                else:
                    p.sub_(step, alpha=lr)


def param_groups(
    model: nn.Module, weight_decay: float, backbone_lr_mult: float = 1.0
) -> list[dict]:
    """Weight decay on conv/linear weights only; never on BN parameters or biases.

    With ``backbone_lr_mult != 1`` the head (the classifier) and the backbone get groups of
    their own, the backbone's with ``lr_mult`` = ``backbone_lr_mult`` (``set_lr`` applies it).
    Parameters that do not require gradients (frozen batch norm) are left out.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if backbone_lr_mult == 1.0:
        parts = [(1.0, named)]
    else:
        parts = [
            (1.0, [(n, p) for n, p in named if is_head(n)]),
            (backbone_lr_mult, [(n, p) for n, p in named if not is_head(n)]),
        ]
    groups = []
    for mult, part in parts:
        decay, no_decay = [p for _, p in part if p.ndim > 1], [p for _, p in part if p.ndim <= 1]
        groups.append(dict(params=decay, weight_decay=weight_decay, lr_mult=mult))
        groups.append(dict(params=no_decay, weight_decay=0.0, lr_mult=mult))
    return groups


def make_optimizer(model: nn.Module, recipe: Recipe, lr: float) -> torch.optim.Optimizer:
    """The recipe's optimizer over ``model``'s parameters, at peak learning rate ``lr``."""
    groups = param_groups(model, recipe.weight_decay, recipe.backbone_lr_mult)
    if recipe.optimizer == "rmsprop_tf":
        return RMSpropTF(
            groups, lr=lr, rho=recipe.rmsprop_decay, momentum=recipe.momentum, eps=recipe.opt_eps
        )
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=(recipe.momentum, 0.999))
    return torch.optim.SGD(groups, lr=lr, momentum=recipe.momentum, nesterov=True)


def peak_lr(recipe: Recipe) -> float:
    """The linear scaling rule: ``recipe.lr`` is per 256 images."""
    return recipe.lr * recipe.batch_size / 256


def lr_factor(step: int, steps_per_epoch: int, recipe: Recipe, time_fraction: float = 0.0) -> float:
    """Multiplier of the peak learning rate before optimizer step ``step`` (0-based).

    Linear warm-up over ``warmup_epochs``; then either the official code's staircase
    exponential decay (``decay_rate ** floor(epoch / decay_epochs)``, counted from step 0 as
    TF's ``exponential_decay`` does) or a cosine to ``min_lr_ratio`` at ``epochs``. Under a
    time limit the cosine follows whichever is further along, steps or ``time_fraction``
    (elapsed / ``max_time_s``), so it anneals fully when the time limit, not ``epochs``, ends
    the run.
    """
    epoch = step / steps_per_epoch
    warmup_steps = recipe.warmup_epochs * steps_per_epoch
    if step < warmup_steps:
        return min(1.0, (step + 1) / warmup_steps)
    if recipe.schedule == "step":
        return recipe.decay_rate ** math.floor(epoch / recipe.decay_epochs)
    span = max(recipe.epochs - recipe.warmup_epochs, 1e-9)
    progress = min(1.0, max((epoch - recipe.warmup_epochs) / span, time_fraction))
    lo = recipe.min_lr_ratio
    return lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * progress))


def fraction_done(
    step: int, steps_per_epoch: int, recipe: Recipe, time_fraction: float = 0.0
) -> float:
    """How far the run is, 0 to 1: steps over ``epochs``, or the time limit's elapsed share
    when that is further along (as the cosine schedule counts it)."""
    total = max(recipe.epochs * steps_per_epoch, 1e-9)
    return min(1.0, max(step / total, time_fraction))


def stage_side(resolution: int, progress: float, stages: int, start: float) -> int:
    """The training image side at ``progress`` under progressive resizing: ``stages`` equal
    stages, the side growing linearly from ``start * resolution`` to ``resolution`` (the
    last stage), rounded to whole pixels; ``resolution`` itself when ``stages`` is 1."""
    if stages <= 1:
        return resolution
    stage = min(stages - 1, math.floor(progress * stages))
    first = start * resolution
    return max(1, round(first + (resolution - first) * stage / (stages - 1)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Every group's learning rate: ``lr`` times the group's ``lr_mult`` (1 when absent)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_mult", 1.0)
