"""A search started by one command: the folder it owns while it runs, and the worker
processes it starts beside itself on this machine (each a ``--join`` of the same command).

The folder is new, or one effnet made for the search of this name (to join or resume it);
any other folder is refused, and ``force`` replaces only a search folder effnet made, never
while another worker uses it (``effnet.rundir.ToolFolder``).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from effnet.errors import EffnetError
from effnet.rundir import ToolFolder, safe_name

T = TypeVar("T")


def process_count(processes: int, workers: int | None) -> int:
    """``processes``, or the old keyword ``workers`` (which now means DataLoader workers
    only, as in DataSpec), accepted for one release with a DeprecationWarning."""
    if workers is None:
        return processes
    import warnings

    what = "workers= is now processes= (worker processes); workers= keeps its DataLoader meaning"
    warnings.warn(what, DeprecationWarning, stacklevel=3)
    return workers


@dataclass(frozen=True)
class Launch:
    """How one command runs its search here: the folder, the storage (None: a journal file
    in the folder), the study name as given and as used, this machine's worker processes,
    and the training function and progress log (None: the defaults)."""

    out: Path
    storage: str | None
    name: str | None
    study_name: str
    processes: int
    train_fn: Any
    log: Any

    @property
    def url(self) -> str:
        return self.storage or str(self.out / "optuna.journal")


def entry_point(
    kind: str, default_name: str, validate: Callable[[Any], Any], body: Callable[[Any, Launch], T]
) -> Callable[..., T]:
    """The public ``run_*`` function of a search: one keyword signature for all of them.
    It checks the config, names the study, and runs ``body(cfg, launch)`` while this process
    holds the search folder (of ``kind``)."""

    def run(
        cfg: Any,
        out: str | Path,
        *,
        storage: str | None = None,
        name: str | None = None,
        processes: int = 1,
        workers: int | None = None,
        train_fn: Any = None,
        log: Any = None,
        force: bool = False,
    ) -> T:
        n = process_count(processes, workers)
        out = Path(out)
        if cfg is not None:
            validate(cfg)
        study_name = safe_name(name or (cfg.name if cfg else default_name), "search name")
        launch = Launch(out, storage, name, study_name, n, train_fn, log)
        return in_folder(out, kind, study_name, force, lambda: body(cfg, launch))

    return run


def in_folder(out: Path, kind: str, name: str, force: bool, body: Callable[[], T]) -> T:
    """``body()`` while this process holds the search folder ``out`` (shared with the
    search's other workers)."""
    folder = ToolFolder(out, kind).open_shared(force, name=name)
    try:
        return body()
    finally:
        folder.unlock()


@contextmanager
def helpers(command: str, url: str, name: str, out: Path, workers: int) -> Iterator[None]:
    """``workers`` - 1 more processes joining the study ``name`` in ``url`` for the
    duration of the block; leaving it waits for them."""
    if workers < 1:
        raise EffnetError(f"workers must be >= 1, got {workers}")
    cmd = [sys.executable, "-m", "effnet", command, "--join", "--storage", url,
           "--name", name, "--out", str(out)]  # fmt: skip
    children = [subprocess.Popen(cmd) for _ in range(workers - 1)]
    try:
        yield
    finally:
        for c in children:
            c.wait()
