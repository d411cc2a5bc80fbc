"""``load_splits``: a DataSpec in, train / minival / test datasets of uint8 images out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from effnet.data import fashion_mnist
from effnet.data.imagefolder import ImageFolder, class_folders
from effnet.data.spec import DataSpec
from effnet.data.split import stratified_pick, stratified_split
from effnet.errors import EffnetError
from effnet.io import atomic_write_text


class TensorImages(Dataset):
    """In-memory images (uint8 [N, C, H, W]) and labels; ``images[idx]`` gathers a batch."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images = images
        self.labels = labels
        self.targets = labels.numpy()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])


@dataclass
class Splits:
    """The three splits of one DataSpec. ``test`` is for the final number only."""

    train: Dataset
    minival: Dataset
    test: Dataset
    num_classes: int
    in_chans: int
    class_names: list[str]
    sources: list[Dataset] = field(default_factory=list, repr=False)

    @property
    def bad_files(self) -> list[str]:
        """Image files skipped so far (scan time and decode time, across worker processes)."""
        found: set[str] = set()
        for ds in self.sources:
            found |= set(getattr(ds, "bad_files", ()))
        return sorted(found)

    def write_bad_files(self, path: str | Path) -> int:
        """Write the skipped files, one per line, atomically; nothing when there are none."""
        bad = self.bad_files
        if bad:
            atomic_write_text(path, "".join(f"{p}\n" for p in bad))
        return len(bad)


def targets_of(dataset: Dataset) -> np.ndarray:
    """Labels of every item, without decoding images."""
    if isinstance(dataset, Subset):
        return targets_of(dataset.dataset)[np.asarray(dataset.indices)]
    return np.asarray(dataset.targets)


def _carve(train: Dataset, spec: DataSpec) -> tuple[Dataset, Dataset]:
    """(train, minival): minival first (so it never depends on --subset), then the subset."""
    labels = targets_of(train)
    kept, held = stratified_split(labels, spec.minival, spec.seed)
    if spec.subset is not None:
        if spec.subset > len(kept):
            raise EffnetError(
                f"data subset of {spec.subset} images exceeds the {len(kept)} training images"
            )
        kept = kept[stratified_pick(labels[kept], spec.subset, spec.seed + 1)]
    return Subset(train, kept.tolist()), Subset(train, held.tolist())


def decode_size(spec: DataSpec, resolution: int | None) -> int:
    """ImageFolder decode size: the spec's, else twice the model resolution capped at 256."""
    if spec.image_size is not None:
        return spec.image_size
    if resolution is None:
        return 256
    return max(resolution, min(2 * resolution, 256))


def fashion_mnist_splits(spec: DataSpec) -> Splits:
    """Fashion-MNIST: minival carved (stratified) from the 60k training images, test the
    official 10k."""
    train_x, train_y, test_x, test_y = fashion_mnist.load_arrays(spec.data_dir, spec.download)
    train = TensorImages(torch.from_numpy(train_x.copy()).unsqueeze(1), torch.from_numpy(train_y))
    test = TensorImages(torch.from_numpy(test_x.copy()).unsqueeze(1), torch.from_numpy(test_y))
    train_part, minival = _carve(train, spec)
    names = list(fashion_mnist.CLASS_NAMES)
    return Splits(train_part, minival, test, len(names), 1, names, [train, test])


def numpy_splits(spec: DataSpec) -> Splits:
    """A .npz file of arrays (effnet.data.numpy_arrays): minival carved from x_train, test is
    x_test."""
    from effnet.data import numpy_arrays

    a = numpy_arrays.read(spec.source)
    train = TensorImages(torch.from_numpy(a["x_train"]), torch.from_numpy(a["y_train"]))
    test = TensorImages(torch.from_numpy(a["x_test"]), torch.from_numpy(a["y_test"]))
    train_part, minival = _carve(train, spec)
    names = [str(n) for n in a["class_names"]]
    return Splits(train_part, minival, test, len(names), int(a["x_train"].shape[1]), names,
                  [train, test])  # fmt: skip


def image_folder_splits(spec: DataSpec, resolution: int | None) -> Splits:
    """An ImageFolder root: with a ``test/`` folder, ``val/`` is the minival and ``test/``
    the test; without one, minival is carved from ``train/`` and ``val/`` is the test split
    (as ImageNet's validation set is the paper's reported number)."""
    root = Path(spec.source).expanduser()
    if not (root / "train").is_dir():
        raise EffnetError(f"data source {root} has no train/ folder (expected train/ and val/)")
    if not (root / "val").is_dir():
        raise EffnetError(f"data source {root} has no val/ folder (expected train/ and val/)")
    size = decode_size(spec, resolution)
    classes = class_folders(root / "train")
    train = ImageFolder(root / "train", size, classes, every_class=True,
                        allow_empty=spec.allow_empty_classes)  # fmt: skip
    val = ImageFolder(root / "val", size, classes)
    if (root / "test").is_dir():
        test = ImageFolder(root / "test", size, classes)
        train_part = train
        if spec.subset is not None:
            pick = stratified_pick(train.targets, spec.subset, spec.seed + 1)
            train_part = Subset(train, pick.tolist())
        return Splits(train_part, val, test, len(classes), 3, classes, [train, val, test])
    train_part, minival = _carve(train, spec)
    return Splits(train_part, minival, val, len(classes), 3, classes, [train, val])


def in_memory(dataset: Dataset) -> bool:
    """True when items are already decoded tensors (worker processes would only add cost)."""
    if isinstance(dataset, Subset):
        return in_memory(dataset.dataset)
    return isinstance(dataset, TensorImages)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    spec: DataSpec,
    *,
    shuffle: bool = False,
    sampler: torch.utils.data.Sampler | None = None,
    drop_last: bool = False,
    generator: torch.Generator | None = None,
) -> torch.utils.data.DataLoader:
    """A DataLoader with ``spec.workers`` decoding processes (none for in-memory data)."""
    workers = 0 if in_memory(dataset) else spec.workers
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        drop_last=drop_last,
        generator=generator,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=torch.cuda.is_available(),
    )
