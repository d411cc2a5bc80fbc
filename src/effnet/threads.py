"""How many threads training uses: the cores other processes leave free, re-checked as it runs.

PyTorch's intra-op threads (OpenMP) wait for each other at the end of every operator. With
two threads on two cores and one other CPU-bound process (even at ``nice 19``), every op
waits for the thread that lost its core, and a training step here took 4x as long as on a
quiet machine; one thread on the free core is only about 1.5x slower than two on a quiet
machine. So training measures how busy the other processes keep the cores this process
may run on (``/proc/stat`` minus this process's own CPU time) and uses the rest, at least
one thread, at most the cores (or the user's fixed number). It re-measures every
``every_s`` seconds of training from counter differences, without pausing the run.

``$EFFNET_THREADS`` (a positive integer) fixes the count like ``effnet train --threads``.
Where ``/proc/stat`` is missing (not Linux) the count stays where it started. Runs under
``--deterministic`` keep one thread count from start to end (float results can depend
on it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

from effnet.errors import EffnetError

PROC_STAT = Path("/proc/stat")
ENV = "EFFNET_THREADS"


def fixed_from_env() -> int | None:
    """The thread count ``$EFFNET_THREADS`` fixes, if set; a bad value is an error."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise EffnetError(f"{ENV} must be a positive integer, got {text!r}")
    return int(text)


def usable_cores() -> list[int]:
    """The CPU numbers this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def busy_ticks(cores: list[int], stat: Path = PROC_STAT) -> tuple[int, int] | None:
    """(busy, total) clock ticks summed over ``cores`` since boot; None without /proc/stat."""
    try:
        lines = stat.read_text().splitlines()
    except OSError:
        return None
    wanted = {f"cpu{c}" for c in cores}
    busy = total = 0
    for line in lines:
        parts = line.split()
        if parts and parts[0] in wanted:
            ticks = [int(v) for v in parts[1:9]]  # user nice system idle iowait irq softirq steal
            total += sum(ticks)
            busy += sum(ticks) - ticks[3] - ticks[4]
    return (busy, total) if total else None


def threads_for(others_busy: float, cores: int, limit: int | None = None) -> int:
    """Threads to run with when other processes keep ``others_busy`` cores busy.

    A core counts as taken when others use it for more than 70% of the time, so short
    bursts (an editor, a shell) do not halve training.
    """
    free = cores - others_busy
    n = int(free + 0.7)
    return max(1, min(n, limit or cores))


class ThreadGovernor:
    """Sets ``torch.set_num_threads`` from the cores other processes leave free."""

    def __init__(
        self,
        fixed: int | None = None,
        every_s: float = 30.0,
        adapt: bool = True,
        stat: Path = PROC_STAT,
        clock: Callable[[], float] = time.monotonic,
        cpu_clock: Callable[[], float] = time.process_time,
    ) -> None:
        self.cores = usable_cores()
        fixed = fixed or fixed_from_env()
        self.limit = fixed
        self.every_s = every_s
        self.stat = stat
        self.clock, self.cpu_clock = clock, cpu_clock
        self.adapt = adapt and fixed is None
        self.threads = fixed or torch.get_num_threads()
        self.others_busy = 0.0
        self._last: tuple[float, float, tuple[int, int]] | None = None

    def _sample(self) -> tuple[float, float, tuple[int, int]] | None:
        ticks = busy_ticks(self.cores, self.stat)
        return None if ticks is None else (self.clock(), self.cpu_clock(), ticks)

    def start(self, probe_s: float = 0.3) -> int:
        """Measure for ``probe_s`` (this process idle) and set the thread count."""
        if self.adapt:
            self._last = self._sample()
            if self._last is not None:
                time.sleep(probe_s)
                self._update()
        torch.set_num_threads(self.threads)
        return self.threads

    def tick(self) -> int:
        """Call often (every step); re-measures when ``every_s`` has passed."""
        if self.adapt and self._last is not None and self.clock() - self._last[0] >= self.every_s:
            self._update()
            if torch.get_num_threads() != self.threads:
                torch.set_num_threads(self.threads)
        return self.threads

    def _update(self) -> None:
        now = self._sample()
        if now is None or self._last is None:
            return
        (t0, c0, (b0, n0)), (t1, c1, (b1, n1)) = self._last, now
        self._last = now
        if n1 <= n0 or t1 <= t0:
            return
        busy_cores = len(self.cores) * (b1 - b0) / (n1 - n0)
        ours = (c1 - c0) / (t1 - t0)
        self.others_busy = max(0.0, busy_cores - ours)
        self.threads = threads_for(self.others_busy, len(self.cores), self.limit)
