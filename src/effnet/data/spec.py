"""What data a run uses, as one frozen, JSON-able record saved with the run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from effnet.errors import EffnetError
from effnet.record import Record

FASHION_MNIST = "fashion-mnist"


@dataclass(frozen=True)
class DataSpec(Record):
    """Where the images come from and how the training split is carved.

    ``source`` is ``"fashion-mnist"`` or the path of an ImageFolder root holding ``train/``
    and ``val/`` (optionally ``test/``) class-per-folder subtrees.
    """

    source: str = FASHION_MNIST  # "fashion-mnist" or an ImageFolder root
    data_dir: str | None = None  # fashion-mnist IDX folder (searched before the system copy)
    minival: int = 5000  # training images held out (stratified) for model selection
    subset: int | None = None  # use only this many training images (stratified), for quick runs
    image_size: int | None = None  # ImageFolder decode size; None: 2x model resolution, cap 256
    seed: int = 0  # seeds the minival/subset draw (not the training order)
    download: bool = False  # fetch fashion-mnist from its canonical URL when not found
    workers: int = 2  # DataLoader worker processes for decoding

    def __post_init__(self) -> None:
        if self.minival < 0:
            raise EffnetError(f"data minival must be >= 0 images, got {self.minival}")
        if self.subset is not None and self.subset <= 0:
            raise EffnetError(f"data subset must be a positive image count, got {self.subset}")
        if self.image_size is not None and self.image_size < 8:
            raise EffnetError(f"data image_size must be >= 8 pixels, got {self.image_size}")
        if self.workers < 0:
            raise EffnetError(f"data workers must be >= 0, got {self.workers}")

    @property
    def is_fashion_mnist(self) -> bool:
        return self.source == FASHION_MNIST

    KIND: ClassVar[str] = "data spec"  # JSON in and out: effnet.record.Record
