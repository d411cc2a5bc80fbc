"""Atomic file writes: temp file in the same folder, fsync, rename.

A crash mid-write leaves the previous file intact; readers never see half a file. A write
that fails (read-only folder, permission denied, disk full) is an EffnetError naming the
file, and the temp file is removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from effnet.errors import EffnetError


def _readable(tmp: str) -> None:
    """mkstemp creates 0600 files; give the result the permissions a plain open() would."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)


def _write_error(target: Path, e: OSError) -> EffnetError:
    why = e.strerror or str(e)
    if e.errno == errno.ENOSPC:
        why = "no space left on the device (disk full)"
    return EffnetError(f"cannot write {target}: {why}")


def _mkstemp(target: Path) -> tuple[int, str]:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as e:
        raise _write_error(target, e) from None


@contextlib.contextmanager
def _temp_beside(path: str | Path) -> Iterator[str]:
    """A temp file's name next to ``path``: whatever the body writes there is fsynced and
    renamed over ``path`` when it ends; on any error the temp file is removed."""
    target = Path(path)
    fd, tmp = _mkstemp(target)
    os.close(fd)
    try:
        yield tmp
        _readable(tmp)  # after the write: a writer may replace the file (safetensors: 0600)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise _write_error(target, e) from None
        if isinstance(e, RuntimeError) and "unexpected pos" in str(e):
            # torch.save's zip writer reports a full disk as "unexpected pos N vs M"
            raise EffnetError(f"cannot write {target}: the disk is full (short write)") from None
        raise


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temp file next to ``path``; on success fsync and rename it over ``path``."""
    with _temp_beside(path) as tmp, open(tmp, mode) as f:
        yield f


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_open(path, "w") as f:
        f.write(text)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def atomic_write_with(path: str | Path, writer: Callable[[str], None]) -> Path:
    """For libraries that write to a path themselves (e.g. safetensors, torch.save)."""
    with _temp_beside(path) as tmp:
        writer(tmp)
    return Path(path)


def sha256_of(path: str | Path) -> str:
    """The file's SHA-256 (hex), read in 1 MiB chunks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
