"""Images as NumPy arrays in one ``.npz`` file (Keras' ``mnist.npz`` layout):
``x_train``, ``y_train``, ``x_test``, ``y_test`` and, optionally, ``class_names``.

Images are uint8, ``(N, H, W)`` (grey) or ``(N, H, W, C)`` with C 1 or 3; labels are whole
numbers 0..K-1 with every class in the training split. The file is read with
``allow_pickle=False``: it holds arrays only, never code. Normalisation is the training
images' own per-channel mean and std, kept in the trained model's config.
"""

from __future__ import annotations

import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from effnet.errors import EffnetError

KEYS = ("x_train", "y_train", "x_test", "y_test")


def claims(source: str) -> bool:
    return source.lower().endswith(".npz")


@lru_cache(maxsize=2)  # one file's arrays, not every version of every file
def _read(path: str, stamp: tuple[int, int]) -> dict[str, np.ndarray]:
    p = Path(path).expanduser()
    try:
        with np.load(p, allow_pickle=False) as z:
            missing = [k for k in KEYS if k not in z.files]
            if missing:
                raise EffnetError(
                    f"{p} lacks array(s) {', '.join(missing)} (needs {', '.join(KEYS)})"
                )
            arrays = {k: z[k] for k in z.files if k in (*KEYS, "class_names")}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise EffnetError(f"cannot read NumPy arrays from {p}: {e}") from None
    return arrays


def read(path: str) -> dict[str, np.ndarray]:
    """The file's checked arrays: images as (N, C, H, W) uint8, labels as int64."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise EffnetError(f"data source {p}: no such .npz file")
    st = p.stat()
    raw = _read(str(p), (st.st_mtime_ns, st.st_size))
    out: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        x, y = raw[f"x_{split}"], raw[f"y_{split}"]
        if x.dtype != np.uint8:
            raise EffnetError(f"{p}: x_{split} must be uint8 images, got {x.dtype}")
        if x.ndim == 3:
            x = x[:, None]
        elif x.ndim == 4 and x.shape[-1] in (1, 3):
            x = x.transpose(0, 3, 1, 2)
        else:
            raise EffnetError(f"{p}: x_{split} must be (N, H, W) or (N, H, W, 1|3), got {x.shape}")
        if y.ndim != 1 or len(y) != len(x):
            raise EffnetError(f"{p}: y_{split} must hold one label per image of x_{split}")
        if not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
            raise EffnetError(f"{p}: y_{split} must be whole numbers from 0")
        out[f"x_{split}"], out[f"y_{split}"] = np.ascontiguousarray(x), y.astype(np.int64)
    if out["x_train"].shape[1:] != out["x_test"].shape[1:]:
        raise EffnetError(f"{p}: train and test images differ in shape")
    k = int(out["y_train"].max()) + 1 if len(out["y_train"]) else 0
    if k < 2 or len(np.unique(out["y_train"])) != k:
        raise EffnetError(f"{p}: the training labels must cover classes 0..K-1, K >= 2")
    if len(out["y_test"]) and out["y_test"].max() >= k:
        raise EffnetError(f"{p}: a test label is not among the {k} training classes")
    names = raw.get("class_names")
    if names is not None:
        if names.ndim != 1:
            raise EffnetError(f"{p}: class_names must be a 1-d array of names")
        listed = [n.decode() if isinstance(n, bytes) else str(n) for n in names.tolist()]
        if len(listed) != k:
            raise EffnetError(f"{p}: class_names lists {len(listed)} names for {k} classes")
        if len(set(listed)) != k:
            raise EffnetError(f"{p}: class_names holds a name twice")
    out["class_names"] = np.asarray(listed if names is not None else [str(i) for i in range(k)])
    return out


def shape(source: str) -> tuple[int, int]:
    """(num_classes, in_chans)."""
    a = read(source)
    return len(a["class_names"]), int(a["x_train"].shape[1])


def native(source: str) -> int | None:
    a = read(source)
    return int(min(a["x_train"].shape[2:]))


def normalisation(source: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The training images' per-channel mean and std (on [0, 1])."""
    x = read(source)["x_train"]  # (N, C, H, W) uint8: count each value, no float copy
    values = np.arange(256, dtype=np.float64) / 255.0
    mean, std = [], []
    for c in range(x.shape[1]):
        counts = np.bincount(x[:, c].ravel(), minlength=256).astype(np.float64)
        m = float(counts @ values / counts.sum())
        mean.append(m)
        std.append(max(float(np.sqrt(counts @ (values - m) ** 2 / counts.sum())), 1e-3))
    return tuple(round(float(m), 4) for m in mean), tuple(round(float(s), 4) for s in std)
