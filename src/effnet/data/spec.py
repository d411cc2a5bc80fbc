"""What data a run uses, as one frozen, JSON-able record saved with the run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from effnet.errors import EffnetError
from effnet.record import Record

FASHION_MNIST = "fashion-mnist"


MAX_IMAGE_SIZE = 4096  # decode size in pixels; one 4096 px RGB image is 48 MiB


@dataclass(frozen=True)
class DataSpec(Record):
    """Where the images come from and how the training split is carved.

    ``source`` is ``"fashion-mnist"``, a ``.npz`` file of arrays, or the path of an
    ImageFolder root holding ``train/`` and ``val/`` (optionally ``test/``) class-per-folder
    subtrees (the table of sources: ``effnet.data.sources``).
    """

    source: str = FASHION_MNIST  # "fashion-mnist", a .npz file or an ImageFolder root
    data_dir: str | None = None  # fashion-mnist IDX folder (searched before the system copy)
    minival: int = 5000  # training images held out (stratified) for model selection
    subset: int | None = None  # use only this many training images (stratified), for quick runs
    image_size: int | None = None  # ImageFolder decode size; None: 2x model resolution, cap 256
    seed: int = 0  # seeds the minival/subset draw (not the training order)
    download: bool = False  # fetch fashion-mnist from its canonical URL when not found
    workers: int = 2  # DataLoader worker processes for decoding
    allow_empty_classes: bool = False  # ImageFolder: keep a class folder with no image

    def __post_init__(self) -> None:
        _check_types(self)
        if self.minival < 0:
            raise EffnetError(f"data minival must be >= 0 images, got {self.minival}")
        if self.subset is not None and self.subset <= 0:
            raise EffnetError(f"data subset must be a positive image count, got {self.subset}")
        if self.image_size is not None and not 8 <= self.image_size <= MAX_IMAGE_SIZE:
            raise EffnetError(
                f"data image_size must be 8..{MAX_IMAGE_SIZE} pixels, got {self.image_size}"
            )
        if not 0 <= self.workers <= 256:
            raise EffnetError(f"data workers must be 0..256, got {self.workers}")
        if not 0 <= self.seed < 2**32:
            raise EffnetError(f"data seed must be in 0..2**32-1, got {self.seed}")

    @property
    def is_fashion_mnist(self) -> bool:
        return self.source == FASHION_MNIST

    KIND: ClassVar[str] = "data spec"  # JSON in and out: effnet.record.Record


_KINDS = {"str": (str,), "int": (int,), "bool": (bool,)}


def _check_types(spec: DataSpec) -> None:
    """JSON (a study's "data") may hold "5000" or 0.5 where a count belongs."""
    for f in dataclasses.fields(spec):
        v, kind = getattr(spec, f.name), str(f.type)
        if v is None and kind.endswith("| None"):
            continue
        want = _KINDS[kind.split()[0]]
        if not isinstance(v, want) or (isinstance(v, bool) and bool not in want):
            label = {"str": "a string", "int": "a whole number", "bool": "true or false"}
            raise EffnetError(f"data {f.name} must be {label[kind.split()[0]]}, got {v!r}")
