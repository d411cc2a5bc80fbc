"""Fashion-MNIST from its four official IDX files: find, fetch (SHA-256 checked), parse.

Lookup order (:func:`locate`): an explicit folder (``--data-dir`` or the
``EFFNET_FASHION_MNIST_DIR`` environment variable), the Debian package location
(``apt-get install dataset-fashion-mnist``), the user cache. When fetching is allowed
(``effnet data``, ``--download``, ``make run``): install the Debian package where apt is
available and we are root, else download the canonical files into the user cache, each
``.gz`` verified against its SHA-256. Files may be gzipped (as published) or raw.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from effnet.errors import EffnetError
from effnet.io import atomic_open, sha256_of

URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
URL_ENV = "EFFNET_FASHION_MNIST_URL"  # a mirror's base URL, e.g. file:///srv/fashion-mnist/
DIR_ENV = "EFFNET_FASHION_MNIST_DIR"  # an explicit folder, like --data-dir
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_PACKAGE = "dataset-fashion-mnist"
CACHE_DIR: Path | None = None  # None: $XDG_CACHE_HOME/effnet/fashion-mnist (~/.cache/...)
DOWNLOAD_TIMEOUT_S = 15.0
APT_TIMEOUT_S = 600.0

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


def cache_dir() -> Path:
    """The user cache folder that downloads go to."""
    if CACHE_DIR is not None:
        return Path(CACHE_DIR).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "effnet" / "fashion-mnist"


def explicit_dir(data_dir: str | Path | None) -> Path | None:
    """The folder the user named: ``data_dir``, else ``$EFFNET_FASHION_MNIST_DIR``."""
    named = data_dir or os.environ.get(DIR_ENV)
    return Path(named).expanduser() if named else None


def search_dirs(data_dir: str | Path | None) -> list[Path]:
    """Where :func:`locate` looks, in order."""
    named = explicit_dir(data_dir)
    return [*([named] if named else []), SYSTEM_DIR, cache_dir()]


def three_ways() -> str:
    """The one-line advice every lookup failure ends with."""
    return (
        f"get it one of three ways: `apt-get install {DEBIAN_PACKAGE}` (Debian/Ubuntu), "
        f"`effnet data` (downloads with checksums into {cache_dir()}), or put the 4 files "
        f"({', '.join(s + '.gz' for s in FILES)}) in a folder and pass --data-dir DIR "
        f"(or set {DIR_ENV})"
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
            _fetch(base + target.name, target, expected, timeout)
        out[stem] = target
    return out


def _fetch(url: str, target: Path, expected: str, timeout: float) -> None:
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
            f"checksum mismatch for {url}: sha256 {e.args[0]}, expected {expected}"
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise EffnetError(f"cannot download {url} ({reason})") from None


class _ChecksumMismatch(Exception):
    pass


def apt_available() -> bool:
    """True where the Debian package can be installed: apt-get exists and we are root."""
    return shutil.which("apt-get") is not None and hasattr(os, "geteuid") and os.geteuid() == 0


def install_debian_package(timeout: float = APT_TIMEOUT_S) -> None:
    """``apt-get install`` the dataset package (after ``apt-get update`` if the first try
    fails, as on a machine whose package lists were never fetched)."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", DEBIAN_PACKAGE]
    try:
        for cmd in (install, ["apt-get", "update", "-q"], install):
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
            if done.returncode == 0 and cmd is install and find_files(SYSTEM_DIR):
                return
    except (OSError, subprocess.TimeoutExpired) as e:
        raise EffnetError(f"apt-get install {DEBIAN_PACKAGE} failed ({e})") from None
    last = (done.stderr or done.stdout).strip().splitlines()
    raise EffnetError(
        f"apt-get install {DEBIAN_PACKAGE} failed ({last[-1] if last else done.returncode})"
    )


def locate(data_dir: str | Path | None = None, allow_download: bool = False) -> dict[str, Path]:
    """Paths of the four files, found in the order of the module docstring.

    An explicit folder that lacks the files is an error (never silently replaced by another
    copy). ``allow_download`` permits installing the Debian package or downloading.
    """
    named = explicit_dir(data_dir)
    if named is not None:
        found = find_files(named)
        if found:
            return found
        raise EffnetError(f"Fashion-MNIST files not found in {named}; {three_ways()}")
    for folder in (SYSTEM_DIR, cache_dir()):
        found = find_files(folder)
        if found:
            return found
    looked = f"looked in {SYSTEM_DIR} and {cache_dir()}"
    if not allow_download:
        raise EffnetError(f"Fashion-MNIST not found ({looked}); {three_ways()}")
    failures = []
    if apt_available():
        _say(f"effnet: Fashion-MNIST not found; installing {DEBIAN_PACKAGE} with apt-get")
        try:
            install_debian_package()
            return find_files(SYSTEM_DIR)  # type: ignore[return-value]
        except EffnetError as e:
            failures.append(str(e))
    try:
        with contextlib.suppress(OSError):
            cache_dir().mkdir(parents=True, exist_ok=True)
        _say(f"effnet: downloading Fashion-MNIST (30 MB, SHA-256 checked) into {cache_dir()}")
        return download(cache_dir())
    except EffnetError as e:
        failures.append(str(e))
    raise EffnetError(f"Fashion-MNIST not found ({looked}; {'; '.join(failures)}); {three_ways()}")


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


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
