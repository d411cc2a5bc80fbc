"""Fixtures shared by the test modules."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

FASHION_MNIST_SLICE = Path(__file__).parent / "fixtures" / "fashion-mnist"
# Every test (and every process a test starts) reads the shipped 1,300-image slice, never
# the full dataset or the network: `make test` passes on a machine that has neither.
os.environ["EFFNET_FASHION_MNIST_DIR"] = str(FASHION_MNIST_SLICE)
# The tests' models are tiny: a second thread mostly waits for the first, and when anything
# else runs on a 2-core machine it spin-waits (measured: the L2 forward/backward took 0.5 s
# on one thread, 5.4 s on two beside another job). Tests that need more threads set them.
torch.set_num_threads(1)
# No test reaches the hub or reads the user's caches: the hub tests build their own cache
# or serve one on 127.0.0.1 (tests/hubfake.py) and say so; set before huggingface_hub
# is imported, which reads these once.
_CACHES = Path(os.environ.get("TMPDIR", "/tmp")) / f"effnet-test-caches-{os.getpid()}"
os.environ["HF_HOME"] = str(_CACHES / "hf")
os.environ["HF_HUB_CACHE"] = str(_CACHES / "hf" / "hub")
os.environ["TORCH_HOME"] = str(_CACHES / "torch")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.pop("HF_ENDPOINT", None)
# ... and training, which otherwise picks the cores other processes leave free
os.environ["EFFNET_THREADS"] = "1"


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One thread for a module, restored after it (the session default is one thread too;
    this guards against a test before it that changed it).

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


def two_class_tree(
    root: Path,
    counts: dict[str, int],
    levels: tuple[int, int] = (40, 210),
    names: tuple[str, str] = ("dark", "bright"),
) -> Path:
    """An ImageFolder tree of noisy 32x32 RGB PNGs: per split (``{"train": 16, ...}``) that
    many images of two classes ``names`` (mean pixel ``levels``), seeded."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in counts.items():
        for label, level in zip(names, levels):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(n):
                img = np.clip(rng.normal(level, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(folder / f"{i}.png")
    return root


@pytest.fixture
def fake_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Training replaced by ``test_study.fake_train`` in this process and in the worker
    processes it starts (``EFFNET_TRAIN_FN``); returns the log with one line per call."""
    log = tmp_path / "calls.log"
    monkeypatch.setenv("FAKE_TRAIN_LOG", str(log))
    monkeypatch.setenv("EFFNET_TRAIN_FN", "test_study:fake_train")
    monkeypatch.setenv("FAKE_TRAIN_SLEEP", "0.2")
    tests = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")]))
    return log
