"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny models: a second thread only waits (10-100x slower when other jobs share the CPU).

    Modules that want it say ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _fashion_folder(root: Path, per_class: tuple[int, int, int] = (48, 10, 10)) -> Path:
    from PIL import Image

    from effnet.data import DataSpec, load_splits

    splits = load_splits(DataSpec(minival=0, workers=0))
    images, labels = splits.train.dataset.images, splits.train.dataset.labels
    seen: dict[int, int] = {}
    for i in range(len(labels)):
        c = int(labels[i])
        k = seen.get(c, 0)
        if k >= sum(per_class):
            continue
        seen[c] = k + 1
        split = "train" if k < per_class[0] else "val" if k < sum(per_class[:2]) else "test"
        folder = root / split / f"class{c}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i, 0].numpy()).save(folder / f"{i}.png")
        if len(seen) == 10 and all(v >= sum(per_class) for v in seen.values()):
            break
    return root


@pytest.fixture(scope="session")
def fashion_folder() -> Callable[..., Path]:
    """``fashion_folder(root, (train, val, test) per class)``: a small ImageFolder tree of
    real Fashion-MNIST images saved as PNGs."""
    return _fashion_folder
