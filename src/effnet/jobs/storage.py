"""The Optuna storage workers share, and the lock that makes creating a study one step.

A journal file (one machine, or a file system every machine shares) or an RDB URL
(PostgreSQL, MySQL, SQLite). Optuna's storages make single writes atomic (a trial number,
a study name) but not "create the study, then store its config": a worker that joins in
between sees a study without its config. :func:`creation_lock` closes that window: every
worker that creates a study or stores its attributes holds it, so the first holder's
values are the ones every later holder reads back and compares with its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage

from effnet.errors import EffnetError

LOCK_GRACE_S = 30  # a creation lock left by a killed worker is broken after this long
RDB_HEARTBEAT_S, RDB_GRACE_S = 30, 120  # an RDB trial with no heartbeat for this long failed


def journal_path(url: str | None, out: Path) -> Path | None:
    """The journal file a storage URL names (``None``: ``out/optuna.journal``), or None for
    an RDB URL."""
    if url is None:
        return out / "optuna.journal"
    if url.endswith((".journal", ".log")) and "://" not in url:
        return Path(url)
    return None


def open_storage(url: str | None, out: Path, on_stale: Callable | None = None) -> Any:
    """A journal file in ``out`` by default; a ``.journal``/``.log`` path; or an RDB URL.
    ``on_stale(study, trial)`` is called for a trial an RDB storage fails for a stale
    heartbeat (a worker that died)."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    path = journal_path(url, out)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as e:
            raise EffnetError(f"cannot open journal storage {path}: {e.strerror}") from None
    assert url is not None
    kwargs: dict[str, Any] = {}
    if url.startswith("postgresql"):
        kwargs["connect_args"] = {"connect_timeout": 5}
    # Optuna 4.9 renamed failed_trial_callback (the old name warns on stderr since then)
    params = inspect.signature(optuna.storages.RDBStorage).parameters
    stale = "heartbeat_stale_trial_callback"
    callback = {stale if stale in params else "failed_trial_callback": on_stale}
    for attempt in range(3):
        try:
            return optuna.storages.RDBStorage(
                _driver(url), engine_kwargs=kwargs, heartbeat_interval=RDB_HEARTBEAT_S,
                grace_period=RDB_GRACE_S, **callback,
            )  # fmt: skip
        except Exception as e:  # sqlalchemy / driver errors: one line naming the URL
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            # two workers creating the tables of a fresh database at once: one loses the
            # race on PostgreSQL's catalog ("duplicate key ... pg_type"); the tables exist now
            if "duplicate key" in first and attempt < 2:
                time.sleep(0.5 * (attempt + 1))
                continue
            raise EffnetError(f"cannot reach storage {redact(url)}: {first}") from None
    raise AssertionError("unreachable")


def _driver(url: str) -> str:
    """SQLAlchemy 2.1 maps postgresql:// to psycopg 3; use psycopg2 when only it is there."""
    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None:
        if importlib.util.find_spec("psycopg2") is not None:
            return "postgresql+psycopg2://" + url[len("postgresql://") :]
    return url


def redact(url: str) -> str:
    """The URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        return f"{scheme}://{cred.split(':')[0]}:***@{host}" if ":" in cred else url
    return url


@contextlib.contextmanager
def creation_lock(storage: Any, url: str | None, out: Path, name: str) -> Iterator[None]:
    """Held while a worker creates study ``name`` or stores its attributes.

    A journal or SQLite file: Optuna's own O_EXCL lock file beside it (``.create.lock``;
    NFS-safe; one left by a killed worker is broken after ``LOCK_GRACE_S``). PostgreSQL: a
    session advisory lock; MySQL: ``GET_LOCK``; both end with the worker's connection."""
    path = journal_path(url, out)
    if path is None and url is not None and url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
    if path is not None:
        lock = JournalFileOpenLock(str(path) + ".create", grace_period=LOCK_GRACE_S)
        lock.acquire()
        try:
            yield
        finally:
            lock.release()
        return
    dialect = storage.engine.dialect.name
    if dialect not in ("postgresql", "mysql"):
        yield  # in-memory SQLite and the like: one process, nothing to race
        return
    from sqlalchemy import text

    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    take, give = {
        "postgresql": ("SELECT pg_advisory_lock(:k)", "SELECT pg_advisory_unlock(:k)"),
        "mysql": ("SELECT GET_LOCK(:n, -1)", "SELECT RELEASE_LOCK(:n)"),
    }[dialect]
    args = {"k": key, "n": f"effnet:{key:x}"[:64]}
    with storage.engine.connect() as conn:
        conn.execute(text(take), args)
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text(give), args)
            conn.commit()
