"""Every source of randomness of a training run, seeded from the recipe's ``seed``.

- init: the global RNGs (Python, NumPy, torch) at ``seed`` while the model is built;
- drop path and dropout: the global RNGs at ``seed + rank`` from then on;
- data order: a generator of its own per epoch (``effnet.train.distributed``);
- augmentation: a stream of its own (``augment_seed``), so a model that draws more
  drop-path noise than another does not shift the crops it sees.

The seeds are written to run.json (``random_streams``); checkpoints hold every state.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from effnet.train.recipe import Recipe


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def augment_seed(seed: int, rank: int = 0) -> int:
    """The seed of a run's augmentation stream (rank ``rank``): apart from the global RNG's
    ``seed``, so a model that draws more drop-path noise does not shift the crops."""
    return (seed * 1_000_003 + 7919 * (rank + 1)) % 2**63


def random_streams(recipe: Recipe, world: int) -> dict[str, Any]:
    """Every source of randomness of a run and its seed (written to run.json)."""
    s = recipe.seed
    aug = ([augment_seed(s, r) for r in range(world)] if recipe.crop != "auto"
           else "the global RNG (runs made before 2026-12-08)")  # fmt: skip
    return {
        "init": s,
        "drop_path_and_dropout": [s + r for r in range(world)],  # the global RNG, per rank
        "data_order": f"{s} * 1000003 + epoch",
        "augmentation": aug,
    }
