"""How many threads training uses: the count that trains fastest now, measured as it runs.

PyTorch's intra-op threads (OpenMP) wait for each other at the end of every operator, so
when another process takes one of the cores, two threads on two cores can run much slower
than one (a step of timm's B0 took 4x as long beside a CPU-bound neighbour in an earlier
measurement here); whether it does depends on the neighbour (its priority, its own
threads) and on the machine. Rather than guess from load figures, :class:`ThreadGovernor`
measures: every ``every_s`` seconds of training it runs a few steps with one thread more
or one fewer, compares their median step time with the steps just before, and keeps the
faster count (by more than ``margin``). On a quiet machine the probes cost a few steps a
minute; beside a busy neighbour the run moves to the count that is fastest there, and back
when the neighbour leaves.

``effnet train --threads N`` or ``$EFFNET_THREADS`` fixes the count; runs under
``--deterministic`` keep their starting count (float results can depend on it).
"""

from __future__ import annotations

import os
import statistics
import time
from collections import deque
from collections.abc import Callable

import torch

from effnet.errors import EffnetError

ENV = "EFFNET_THREADS"


def usable_cores() -> int:
    """How many CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def fixed_from_env() -> int | None:
    """The thread count ``$EFFNET_THREADS`` fixes, if set; a bad value is an error."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise EffnetError(f"{ENV} must be a positive integer, got {text!r}")
    return int(text)


class ThreadGovernor:
    """Keeps ``torch.set_num_threads`` at the count whose training steps are fastest."""

    def __init__(
        self,
        fixed: int | None = None,
        every_s: float = 60.0,
        probe_steps: int = 4,
        margin: float = 0.05,
        adapt: bool = True,
        most: int | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        fixed = fixed or fixed_from_env()
        self.most = fixed or most or usable_cores()
        self.adapt = adapt and fixed is None and self.most > 1
        self.threads = fixed or (self.most if self.adapt else torch.get_num_threads())
        self.every_s, self.probe_steps, self.margin = every_s, probe_steps, margin
        self.clock = clock
        self.history: list[tuple[int, float, float]] = []  # (threads, ours, probe) medians
        self._recent: deque[float] = deque(maxlen=8)  # step times at the current count
        self._probe: list[float] | None = None  # step times of the count being tried
        self._trying: int | None = None
        self._last_tick: float | None = None
        self._last_probe = 0.0
        self._direction = -1  # the first probe tries one thread fewer

    def start(self) -> int:
        """Set the starting count (all usable cores unless fixed)."""
        torch.set_num_threads(self.threads)
        self._last_tick = self._last_probe = self.clock()
        return self.threads

    def pause(self) -> None:
        """Evaluation or checkpointing comes next: the time until the next step is not a
        step time."""
        self._last_tick = None

    def tick(self) -> int:
        """Call after every training step; returns the count for the next one."""
        now = self.clock()
        step, self._last_tick = (None if self._last_tick is None else now - self._last_tick), now
        if not self.adapt or step is None:
            return self.threads
        if self._probe is None:
            self._recent.append(step)
            if now - self._last_probe >= self.every_s and len(self._recent) >= self.probe_steps:
                self._begin_probe()
        else:
            self._probe.append(step)
            if len(self._probe) > self.probe_steps:  # the first step after a switch warms up
                self._end_probe(now)
        return self.threads

    def _begin_probe(self) -> None:
        other = self.threads + self._direction
        if not 1 <= other <= self.most:
            self._direction = -self._direction
            other = self.threads + self._direction
        self._trying, self._probe = other, []
        torch.set_num_threads(other)

    def _end_probe(self, now: float) -> None:
        assert self._probe is not None and self._trying is not None
        ours = statistics.median(self._recent)
        probe = statistics.median(self._probe[1:])
        self.history.append((self._trying, ours, probe))
        if probe < ours * (1 - self.margin):
            self.threads = self._trying
            self._recent.clear()
            self._recent.extend(self._probe[1:])
        else:
            self._direction = -self._direction  # next time look the other way
        torch.set_num_threads(self.threads)
        self._probe, self._trying, self._last_probe = None, None, now
