"""Exponential moving average of weights and BN statistics, used for evaluation.

The paper evaluates an EMA with decay 0.9999 over ~100k steps. A fixed 0.9999 over a
2,000-step CPU run would still be mostly the random initialisation, so ``decay=None``
adapts it to the run: 1 - 10 / total_steps (0.9999 for the paper's ImageNet run).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


def adapted_decay(total_steps: int, decay: float | None) -> float:
    """``decay`` if given; else 1 - 10/total_steps clamped to [0.9, 0.9999]."""
    if decay is not None:
        return decay
    return min(0.9999, max(0.9, 1 - 10 / max(total_steps, 1)))


def _ema_fn(decay: float):  # noqa: ANN202 - torch's multi_avg_fn protocol
    """Lerp floating tensors toward the model (warm-up (1+n)/(10+n) as in timm); copy ints."""

    @torch.no_grad()
    def update(ema: list[torch.Tensor], cur: list[torch.Tensor], n: torch.Tensor) -> None:
        if not torch.is_floating_point(ema[0]):
            torch._foreach_copy_(ema, cur)
            return
        d = min(decay, (1 + float(n)) / (10 + float(n)))
        torch._foreach_lerp_(ema, cur, 1 - d)

    return update


def make_ema(model: nn.Module, decay: float) -> AveragedModel:
    """An AveragedModel of ``model`` (parameters and buffers) with EMA ``decay``."""
    ema = AveragedModel(model, multi_avg_fn=_ema_fn(decay), use_buffers=True)
    ema.requires_grad_(False)
    return ema.eval()
