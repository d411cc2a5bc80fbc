"""The data sources, as a table: how each is recognised in a DataSpec's ``source``, what it
holds (classes, channels, pixels: read without decoding the dataset), its normalisation and
how it loads into train / minival / test (found, verified and split by its own module).

| source | ``source`` is | module |
|---|---|---|
| Fashion-MNIST | ``fashion-mnist`` | ``effnet.data.fashion_mnist`` (IDX files, SHA-256) |
| NumPy arrays | a path ending in ``.npz`` | ``effnet.data.numpy_arrays`` |
| ImageFolder | a folder: ``train/``, ``val/`` (``test/``) | ``effnet.data.imagefolder`` |

A new source is one entry in ``SOURCES`` and its module (and its test); NumPy arrays were
added that way. ``load_splits`` reads the table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from effnet.data import numpy_arrays
from effnet.data.imagefolder import class_folders, subfolders
from effnet.data.load import Splits, fashion_mnist_splits, image_folder_splits, numpy_splits
from effnet.data.spec import FASHION_MNIST, DataSpec
from effnet.errors import EffnetError

Stats = tuple[tuple[float, ...], tuple[float, ...]]


@dataclass(frozen=True)
class Source:
    name: str
    claims: Callable[[str], bool]  # whether a DataSpec's source string is this source
    shape: Callable[[str], tuple[int, int]]  # (num_classes, in_chans), no decoding
    native: Callable[[str], int | None]  # the images' pixels (smaller side), if known
    # mean/std the trained model keeps (with no centre crop); None: the architecture's
    normalisation: Callable[[str], Stats | None]
    load: Callable[[Any, int | None], Any]  # (DataSpec, model resolution) -> Splits


def _folder_shape(source: str) -> tuple[int, int]:
    train = Path(source).expanduser() / "train"
    if not train.is_dir():
        raise EffnetError(f"data source {source}: no train/ folder (expected an ImageFolder root)")
    return len(class_folders(train)), 3  # the loader's own rule (hidden folders, >= 2)


def _folder_native(source: str) -> int | None:
    try:
        # PIL: only this check reads an image
        from PIL import Image

        train = Path(source).expanduser() / "train"
        first_class = train / subfolders(train)[0]
        first = sorted(p for p in first_class.iterdir() if p.is_file())[0]
        with Image.open(first) as im:
            return min(im.size)
    except (OSError, IndexError, ValueError, EffnetError):
        return None


def _fashion_stats(source: str) -> Stats:
    from effnet.data.fashion_mnist import MEAN, STD

    return tuple(MEAN), tuple(STD)


SOURCES: tuple[Source, ...] = (
    Source("fashion-mnist", lambda s: s == FASHION_MNIST, lambda s: (10, 1), lambda s: 28,
           _fashion_stats, lambda spec, resolution: fashion_mnist_splits(spec)),
    Source("numpy", numpy_arrays.claims, numpy_arrays.shape, numpy_arrays.native,
           numpy_arrays.normalisation, lambda spec, resolution: numpy_splits(spec)),
    Source("imagefolder", lambda s: Path(s).expanduser().is_dir(), _folder_shape,
           _folder_native, lambda s: None, image_folder_splits),
)  # fmt: skip


def source_of(source: str) -> Source:
    """The table's entry for a DataSpec's ``source``; a one-line error for none."""
    for entry in SOURCES:
        if entry.claims(source):
            return entry
    raise EffnetError(
        f"data source {source!r} is neither 'fashion-mnist', a .npz file of arrays, nor an "
        "existing ImageFolder root"
    )


def load_splits(spec: DataSpec, resolution: int | None = None) -> Splits:
    """The train / minival / test datasets of ``spec``, yielding (uint8 [C, H, W], label),
    by its source's entry. ``resolution`` (the model's) sets the decode size of ImageFolder
    images when ``spec.image_size`` is None."""
    return source_of(spec.source).load(spec, resolution)
