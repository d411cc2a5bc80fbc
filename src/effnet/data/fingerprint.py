"""A cheap fingerprint of a run's data, saved at its start and checked on resume.

A class folder renamed mid-run shifts every label after it; an image added or removed
changes the minival carve. Either way a resumed run would silently train on other data.
The fingerprint holds the class list, the size of each split and one hash: of each image
file's path (relative to its split's root), size and label for an ImageFolder, of the
image and label arrays for in-memory data. Hashing file sizes, not contents, keeps it a
``stat`` per file.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from effnet.data.load import Splits, TensorImages


def fingerprint(splits: Splits) -> dict[str, Any]:
    """{"classes", "counts" (train/minival/test), "hash"} of ``splits``."""
    h = hashlib.sha256()
    for source in splits.sources:
        _feed(h, source)
    return {
        "classes": list(splits.class_names),
        "counts": {
            "train": len(splits.train),
            "minival": len(splits.minival),
            "test": len(splits.test),
        },
        "hash": h.hexdigest(),
    }


def _feed(h: Any, dataset: Dataset) -> None:
    if isinstance(dataset, TensorImages):
        for array in (dataset.images.numpy(), dataset.labels.numpy()):
            h.update(f"{array.dtype}{array.shape}".encode())
            h.update(np.ascontiguousarray(array).data)
        return
    root = Path(getattr(dataset, "root", ""))
    h.update(f"[{root.name}]".encode())
    for path, label in getattr(dataset, "samples", ()):
        try:
            size = os.stat(path).st_size
        except OSError:
            size = -1
        h.update(f"{os.path.relpath(path, root)}\0{size}\0{label}\n".encode())


def difference(saved: dict[str, Any], now: dict[str, Any]) -> str | None:
    """What differs between two fingerprints, in words; None when they agree.

    Only keys present in ``saved`` are compared (a run from before fingerprints saved only
    its class list)."""
    if "classes" in saved and saved["classes"] != now["classes"]:
        gone = [c for c in saved["classes"] if c not in now["classes"]]
        new = [c for c in now["classes"] if c not in saved["classes"]]
        if gone or new:
            return f"classes changed (missing {gone or 'none'}, new {new or 'none'})"
        return "class order changed (labels would be remapped)"
    for split, n in saved.get("counts", {}).items():
        if now["counts"].get(split) != n:
            return f"{split} split has {now['counts'].get(split)} images, the run had {n}"
    if "hash" in saved and saved["hash"] != now["hash"]:
        return "image files changed (same counts, but other names, sizes or labels)"
    return None
