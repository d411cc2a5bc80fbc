"""The folders the tool writes (a run, a study, a search): one owner object for each.

A folder is the tool's when it holds the marker file ``.effnet-folder`` (JSON naming its
kind). The tool makes a folder atomically: a temp folder holding the marker is renamed into
place, so a folder carries the marker from its first instant or was not made by effnet.
Only a marked folder of the same kind is ever emptied (``--force``), and only by the holder
of its lock, after the caller has validated what it will write instead.

``lock()`` takes ``fcntl.flock`` on ``.effnet-lock`` inside the folder and writes the
holder's pid and host into it, so a second writer is refused in one line naming the holder.
The kernel drops the lock when the process exits, however it exits; a stale lock file is
harmless.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

from effnet.errors import EffnetError
from effnet.io import atomic_write_text

MARKER = ".effnet-folder"
LOCK = ".effnet-lock"
_OWN = (MARKER, LOCK)


def safe_name(name: Any, what: str) -> str:
    """``name`` when it can be a single path component: names from configs never navigate."""
    bad = (
        not isinstance(name, str)
        or not name.strip()
        or ".." in name
        or any(sep in name for sep in ("/", "\\", "\0", os.sep))
    )
    if bad:
        raise EffnetError(f"{what} {name!r} cannot name a folder (no '/', '\\', '..' or empty)")
    return name


class ToolFolder:
    """A folder of one ``kind`` ("run", "study", "search") that this tool writes."""

    def __init__(self, path: str | Path, kind: str) -> None:
        self.path = Path(path)
        self.kind = kind
        self._fd: int | None = None

    def marker(self) -> dict[str, Any] | None:
        """The marker's content, or None when there is no readable marker."""
        try:
            data = json.loads((self.path / MARKER).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def is_ours(self, **info: Any) -> bool:
        """The folder carries a marker of this kind (and with these fields, when given)."""
        m = self.marker()
        return m is not None and m.get("kind") == self.kind and _agrees(m, info)

    def has_content(self) -> bool:
        """Something besides the marker and the lock file is in the folder."""
        if not self.path.exists():
            return False
        if not self.path.is_dir():
            raise EffnetError(f"{self.path} exists and is not a folder")
        return any(p.name not in _OWN for p in self.path.iterdir())

    def mark(self, **info: Any) -> None:
        """Write the marker (a folder a previous version made, or after ``clear``)."""
        atomic_write_text(self.path / MARKER, json.dumps({"kind": self.kind, **info}) + "\n")

    def create(self, **info: Any) -> None:
        """Make the folder, marker included, in one rename. An empty folder is replaced;
        one that another process has just made with the same marker is accepted."""
        parent = self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", dir=parent))
        except OSError as e:  # name the folder asked for, not the temp folder made beside it
            why = e.strerror or type(e).__name__
            raise EffnetError(f"cannot create {self.path}: {why} (in {parent})") from None
        try:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o777 & ~umask)
            atomic_write_text(tmp / MARKER, json.dumps({"kind": self.kind, **info}) + "\n")
            try:
                os.rename(tmp, self.path)
            except OSError as e:
                if e.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                    raise
                if not self.is_ours(**info):
                    raise EffnetError(self.not_ours()) from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def not_ours(self) -> str:
        m = self.marker()
        if m is not None and m.get("kind") == self.kind:
            held = ", ".join(f"{k} {v!r}" for k, v in m.items() if k != "kind")
            return (
                f"{self.path} holds another {self.kind} ({held}); choose another --out, or "
                "pass --force to replace it"
            )
        if m is not None and m.get("kind"):
            return (
                f"{self.path} is effnet's {m['kind']} folder, not a {self.kind} folder; effnet "
                "never replaces one kind with another: choose another --out"
            )
        return (
            f"{self.path} exists and was not written by effnet as a {self.kind} folder "
            f"(no {MARKER} marker); effnet never deletes or writes into it, choose another --out"
        )

    def claim(self, force: bool, exists: str, **info: Any) -> None:
        """Create and lock the folder for new work. A folder with content is refused
        (``exists`` is the message) or, with ``force``, emptied: only when it carries this
        kind's marker, and checked again once the lock is held."""
        self._check_replaceable(force, exists)
        self.create(**({} if force else info))
        self.lock()
        try:
            self._check_replaceable(force, exists)
            if force:
                self.clear()
                self.mark(**info)
        except BaseException:
            self.unlock()
            raise

    def _check_replaceable(self, force: bool, exists: str) -> None:
        if self.has_content():
            if not force:
                raise EffnetError(exists)
            if not self.is_ours():
                raise EffnetError(self.not_ours())

    def open_shared(self, force: bool = False, **info: Any) -> ToolFolder:
        """Open the folder for cooperating workers (a search's or a study's): a new one, or
        one of this kind (with ``info``) to join or resume; ``force`` replaces only one this
        tool made, never while a worker holds it. Held with a shared lock; returns self."""
        if force:
            self.claim(True, "", **info)
        elif self.has_content():
            if not self.is_ours(**info):
                raise EffnetError(self.not_ours())
        else:
            self.create(**info)
        self.lock(shared=True)
        return self

    def adopt(self) -> None:
        """Lock a folder the tool made before markers existed (resume only: nothing deleted)."""
        if self.marker() is not None and not self.is_ours():
            raise EffnetError(self.not_ours())
        self.lock()
        if self.marker() is None:
            self.mark()

    def clear(self) -> None:
        """Delete everything but the lock (the marker last): the lock holder only, a marked
        folder of this kind only."""
        if self._fd is None or not self.is_ours():
            raise EffnetError(f"internal: {self.path} cleared without its lock or marker")
        for entry in sorted(self.path.iterdir()):
            if entry.name in _OWN:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def lock(self, shared: bool = False) -> None:
        """Hold the folder's lock (exclusive, or shared by cooperating workers); a second
        holder gets one line naming the first. Converts a held lock to ``shared``."""
        if self._fd is None:
            self._fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self.holder()
            self.unlock()
            raise EffnetError(
                f"{self.kind} folder {self.path} is in use by {holder} (lock {LOCK}); "
                "wait for it to finish or stop it"
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)

    def holder(self) -> str:
        """Who holds the lock, as its holder wrote it ("pid 123 on host")."""
        try:
            text = (self.path / LOCK).read_text().strip()
        except OSError:
            text = ""
        return text or "another process"

    def unlock(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> ToolFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unlock()


def _agrees(marker: dict[str, Any], info: dict[str, Any]) -> bool:
    return all(marker.get(k) == v for k, v in info.items())
