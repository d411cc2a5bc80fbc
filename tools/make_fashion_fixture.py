"""Writes tests/fixtures/fashion-mnist/: a class-balanced slice of Fashion-MNIST in IDX format.

The first TRAIN_PER_CLASS images of each class from the official training file and the
first TEST_PER_CLASS of each class from the official test file, in file order, gzipped
like the published files. Run from the repository root with the full dataset installed
(``apt-get install dataset-fashion-mnist``):

    .venv/bin/python tools/make_fashion_fixture.py
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from effnet.data import fashion_mnist  # noqa: E402

TRAIN_PER_CLASS, TEST_PER_CLASS = 100, 30
OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "fashion-mnist"


def first_per_class(labels: np.ndarray, per_class: int) -> np.ndarray:
    """Indices of the first ``per_class`` items of every class, in file order."""
    keep = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)])
    return np.sort(keep)


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    return header + array.astype(np.uint8).tobytes()


def write(stem: str, array: np.ndarray) -> None:
    # mtime=0: the same input gives byte-identical files
    (OUT / f"{stem}.gz").write_bytes(gzip.compress(idx_bytes(array), 9, mtime=0))


def main() -> None:
    train_x, train_y, test_x, test_y = fashion_mnist.load_arrays(fashion_mnist.SYSTEM_DIR)
    OUT.mkdir(parents=True, exist_ok=True)
    for (x, y), (images, labels), n in (
        ((train_x, train_y), fashion_mnist.FILES[:2], TRAIN_PER_CLASS),
        ((test_x, test_y), fashion_mnist.FILES[2:], TEST_PER_CLASS),
    ):
        keep = first_per_class(y, n)
        write(images, x[keep])
        write(labels, y[keep])
    for path in sorted(OUT.glob("*.gz")):
        print(f"{path.name}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
