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
from pathlib import Path
from typing import TypeVar

from effnet.errors import EffnetError
from effnet.rundir import ToolFolder

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
