"""Stratified, deterministic index draws: the minival hold-out and quick-run subsets.

The paper holds out 25k ImageNet training images as "minival" for model selection, so the
test split is touched only for the final number. A draw depends only on the labels, the count
and the seed, so a resumed or repeated run sees exactly the same images.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from effnet.errors import EffnetError


def per_class_counts(labels: np.ndarray, total: int) -> dict[int, int]:
    """Split ``total`` over classes in proportion to their size (largest remainder)."""
    classes, sizes = np.unique(labels, return_counts=True)
    exact = sizes * (total / len(labels))
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: total - int(counts.sum())]] += 1
    return {int(c): int(n) for c, n in zip(classes, counts)}


def stratified_pick(labels: Sequence[int] | np.ndarray, count: int, seed: int) -> np.ndarray:
    """Sorted indices of ``count`` items drawn per class in proportion to class size."""
    labels = np.asarray(labels)
    if not 0 <= count <= len(labels):
        raise EffnetError(f"cannot draw {count} images from a split of {len(labels)}")
    rng = np.random.default_rng(seed)
    picked = []
    for cls, n in per_class_counts(labels, count).items():
        members = np.flatnonzero(labels == cls)
        picked.append(rng.permutation(members)[:n])
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


def stratified_split(
    labels: Sequence[int] | np.ndarray, holdout: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held_out) sorted, disjoint index arrays covering all of ``labels``."""
    labels = np.asarray(labels)
    if holdout >= len(labels) and holdout > 0:
        raise EffnetError(
            f"minival of {holdout} images leaves nothing to train on ({len(labels)} images)"
        )
    held = stratified_pick(labels, holdout, seed)
    mask = np.ones(len(labels), dtype=bool)
    mask[held] = False
    return np.flatnonzero(mask), held
