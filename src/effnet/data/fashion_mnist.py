"""Fashion-MNIST from its four official IDX files: find, download (SHA-256 checked), parse.

Search order: ``data_dir``, the Debian package location (``apt-get install
dataset-fashion-mnist``), then the download cache. Files may be gzipped (as published) or
raw. A download verifies each ``.gz`` against the SHA-256 of the files published at the
canonical URL and fails fast, in one line, saying where to put the files instead.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from effnet.errors import EffnetError
from effnet.io import atomic_open

URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
URL_ENV = "EFFNET_FASHION_MNIST_URL"  # a mirror's base URL, e.g. file:///srv/fashion-mnist/
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
CACHE_DIR = Path("~/.cache/effnet/fashion-mnist")
DOWNLOAD_TIMEOUT_S = 15.0

CLASS_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
# Pixel statistics of the 60k training images (uint8 / 255), for a model trained from scratch.
MEAN = (0.2860,)
STD = (0.3530,)

# SHA-256 of the .gz files served at URL (the upstream README lists only MD5s: these two
# checksum lists agree; Debian recompresses the same contents, so its .gz hashes differ).
GZ_SHA256 = {
    "train-images-idx3-ubyte": "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
    "train-labels-idx1-ubyte": "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
    "t10k-images-idx3-ubyte": "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
    "t10k-labels-idx1-ubyte": "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",
}
FILES = tuple(GZ_SHA256)
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Parse one IDX file (gzipped or raw) into an array of the shape its header declares."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise EffnetError(f"cannot read IDX file {path}: {e}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise EffnetError(f"{path} is not an IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise EffnetError(f"IDX file {path} is truncated in its header")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise EffnetError(
            f"IDX file {path} has {len(data)} bytes, its header {shape} implies {expected}"
        )
    return np.frombuffer(data, dtype, offset=header).reshape(shape)


def _located(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem, stem.replace("-idx", ".idx")):
        if (folder / name).is_file():
            return folder / name
    return None


def find_files(folder: Path) -> dict[str, Path] | None:
    """The four files in ``folder`` (gz or raw), or None when any is missing."""
    found = {stem: _located(folder, stem) for stem in FILES}
    return None if any(p is None for p in found.values()) else found  # type: ignore[return-value]


def search_dirs(data_dir: str | Path | None) -> list[Path]:
    dirs = [Path(data_dir).expanduser()] if data_dir else []
    return [*dirs, SYSTEM_DIR, CACHE_DIR.expanduser()]


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _where_to_put(dest: Path) -> str:
    return (
        f"put the 4 files ({', '.join(s + '.gz' for s in FILES)}) in {dest} or pass --data-dir, "
        "or run: apt-get install dataset-fashion-mnist"
    )


def download(
    dest: str | Path,
    base_url: str | None = None,
    timeout: float = DOWNLOAD_TIMEOUT_S,
    checksums: dict[str, str] | None = None,
) -> dict[str, Path]:
    """Fetch the four ``.gz`` files into ``dest``, verifying SHA-256; skip ones already valid.

    A file is written under a temp name and renamed only after its checksum matches, so a
    failed or interrupted download never leaves a file that a later run would trust.
    """
    dest = Path(dest).expanduser()
    base = base_url or os.environ.get(URL_ENV) or URL
    base = base if base.endswith("/") else base + "/"
    out = {}
    for stem, expected in (checksums or GZ_SHA256).items():
        target = dest / f"{stem}.gz"
        if not (target.is_file() and sha256_of(target) == expected):
            _fetch(base + target.name, target, expected, timeout, dest)
        out[stem] = target
    return out


def _fetch(url: str, target: Path, expected: str, timeout: float, dest: Path) -> None:
    h = hashlib.sha256()
    try:
        with (
            urllib.request.urlopen(url, timeout=timeout) as response,
            atomic_open(target, "wb") as f,
        ):
            for chunk in iter(lambda: response.read(1 << 20), b""):
                h.update(chunk)
                f.write(chunk)
            if h.hexdigest() != expected:
                raise _ChecksumMismatch(h.hexdigest())
    except _ChecksumMismatch as e:
        raise EffnetError(
            f"checksum mismatch for {url}: sha256 {e.args[0]}, expected {expected}; "
            + _where_to_put(dest)
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise EffnetError(f"cannot download {url} ({reason}); {_where_to_put(dest)}") from None


class _ChecksumMismatch(Exception):
    pass


def locate(data_dir: str | Path | None = None, allow_download: bool = False) -> dict[str, Path]:
    """Paths of the four files: first complete folder in the search order, else download."""
    dirs = search_dirs(data_dir)
    for folder in dirs:
        found = find_files(folder)
        if found:
            return found
    cache = dirs[-1]
    if allow_download:
        with contextlib.suppress(OSError):
            cache.mkdir(parents=True, exist_ok=True)
        return download(cache)
    looked = ", ".join(str(d) for d in dirs)
    raise EffnetError(
        f"Fashion-MNIST not found (looked in {looked}); {_where_to_put(dirs[0])}, "
        "or allow --download"
    )


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=1)
def _read_all(files: tuple[tuple[str, int, int], ...]) -> tuple[np.ndarray, ...]:
    """Decompressing 30 MB takes about a second; a process that builds several runs (tests,
    studies) parses once. Keyed by path, mtime and size, so replaced files are re-read;
    the arrays are read-only, so no caller can change what the next one gets."""
    arrays = tuple(read_idx(path) for path, _, _ in files)
    for a in arrays:
        a.flags.writeable = False
    return arrays


def load_arrays(
    data_dir: str | Path | None = None, allow_download: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train_images [60000,28,28] uint8, train_labels, test_images, test_labels)."""
    files = locate(data_dir, allow_download)
    arrays = list(_read_all(tuple((str(files[s]), *_stamp(files[s])) for s in FILES)))
    for images, labels, stem in (
        (arrays[0], arrays[1], FILES[0]),
        (arrays[2], arrays[3], FILES[2]),
    ):
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise EffnetError(
                f"{files[stem]}: {images.shape} images do not match {labels.shape} labels"
            )
        if labels.max(initial=0) >= len(CLASS_NAMES):
            raise EffnetError(f"labels next to {files[stem]} exceed {len(CLASS_NAMES)} classes")
    train_x, train_y, test_x, test_y = arrays
    return train_x, train_y.astype(np.int64), test_x, test_y.astype(np.int64)
