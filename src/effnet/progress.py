"""Progress of training runs that a person can read: live on a terminal, plain lines in a log.

One :class:`Display` follows a sequence of runs (a study's points, or one ``effnet train``).
On a terminal it draws two live rows with rich: the whole job (runs done, elapsed, time
left) and the run in training (step, epoch, loss, images/s, elapsed, time left). When the
output is not a terminal (CI, a log file) it prints one plain line per run start and end and
one every ``every_s`` seconds in between, with the same numbers.

Time left for the whole job is estimated from multiply-adds: runs of one study train the
same number of steps on the same data, so seconds per multiply-add measured on the runs so
far (including the part of the current one) times the multiply-adds still to train.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import IO, Any


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(int(round(seconds)), 0)
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class StepBar:
    """The training loop's handle on the current run (the subset of tqdm's API it uses)."""

    def __init__(self, display: Display, total: int, initial: int) -> None:
        self.display = display
        self.total, self.n, self.first = total, initial, initial
        self.description, self.postfix = "", ""
        self.started = time.perf_counter()
        self.owns_display = False

    def update(self, n: int = 1) -> None:
        self.n += n
        self.display.tick()

    def set_description(self, text: str) -> None:
        self.description = text

    def set_postfix(self, refresh: bool = False, **values: Any) -> None:
        self.postfix = " ".join(f"{k.replace('_', '/')} {v}" for k, v in values.items())

    def write(self, line: str) -> None:
        self.display.say(line)

    def close(self) -> None:
        if self.owns_display:
            self.display.close()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def fraction(self) -> float:
        return self.n / self.total if self.total else 1.0

    def time_left(self) -> float | None:
        """Seconds left for this run, from the steps taken since it (re)started."""
        taken = self.n - self.first
        if taken <= 0:
            return None
        return self.elapsed() / taken * (self.total - self.n)


class Display:
    """Progress of ``costs`` runs (one multiply-add count each) done one after another."""

    def __init__(
        self,
        costs: Sequence[float] = (1.0,),
        *,
        title: str = "study",
        live: bool | None = None,
        stream: IO[str] | None = None,
        every_s: float = 30.0,
    ) -> None:
        self.stream = stream or sys.stderr
        self.costs = [float(c) for c in costs]
        self.title = title
        self.every_s = every_s
        self.live = self.stream.isatty() if live is None else live
        self.index, self.label = 0, ""
        self.done_runs, self.skipped_cost, self.done_cost, self.spent = 0, 0.0, 0.0, 0.0
        self.bar: StepBar | None = None
        self.started = time.perf_counter()
        self.last_line = self.run_started = self.started
        self._rich: Any = None
        if self.live:
            self._start_rich()

    @property
    def shows_steps(self) -> bool:
        """Whether runs should report their steps (live, or plain lines now and then)."""
        return self.live or self.every_s < float("inf")

    # -- the job ----------------------------------------------------------------------------

    def start_run(self, index: int, label: str) -> None:
        """Run ``index`` (0-based into ``costs``), called ``label``, starts training."""
        self.index, self.label = index, label
        self.bar = None
        self.run_started = time.perf_counter()

    def finish_run(self, line: str = "", *, skipped: bool = False) -> None:
        """Run ``self.index`` ended (``skipped``: it had finished in an earlier call)."""
        cost = self.costs[self.index] if self.index < len(self.costs) else 0.0
        if skipped:
            self.skipped_cost += cost
        else:
            self.done_cost += cost
            self.spent += time.perf_counter() - self.run_started
        self.done_runs += 1
        self.bar = None
        if line:
            self.say(line)
        self.refresh()

    def time_left(self) -> float | None:
        """Seconds left for the whole job (None until the first steps are timed)."""
        bar = self.bar
        current = self.costs[self.index] if bar is not None and self.index < len(self.costs) else 0
        fraction = bar.fraction() if bar is not None else 0.0
        measured_cost = self.done_cost + current * fraction
        measured_time = self.spent + (time.perf_counter() - self.run_started if bar else 0.0)
        remaining = sum(self.costs[self.done_runs :]) - current * fraction
        if bar is not None and bar.time_left() is not None:
            rest = sum(self.costs[self.done_runs + 1 :])
            per_cost = measured_time / measured_cost if measured_cost > 0 else None
            return bar.time_left() + (rest * per_cost if per_cost is not None else 0.0)
        if measured_cost <= 0:
            return None
        return measured_time / measured_cost * remaining

    # -- the run in training ----------------------------------------------------------------

    def step_bar(self, total: int, initial: int = 0) -> StepBar:
        self.bar = StepBar(self, total, initial)
        self.refresh()
        return self.bar

    def tick(self) -> None:
        now = time.perf_counter()
        if self.live:
            self.refresh()
        elif now - self.last_line >= self.every_s:
            self.last_line = now
            self.say(self.status_line())

    # -- output -----------------------------------------------------------------------------

    def status_line(self) -> str:
        """One line with everything the live display shows."""
        parts = [f"[{min(self.done_runs + 1, len(self.costs))}/{len(self.costs)}]"]
        if self.label:
            parts.append(self.label)
        bar = self.bar
        if bar is not None:
            parts.append(f"step {bar.n}/{bar.total}")
            if bar.description:
                parts.append(f"({bar.description})")
            if bar.postfix:
                parts.append(bar.postfix)
            parts.append(f"| {_clock(bar.elapsed())} elapsed, {_clock(bar.time_left())} left")
        parts.append(
            f"| {self.title} {_clock(time.perf_counter() - self.started)} elapsed, "
            f"{_clock(self.time_left())} left"
        )
        return " ".join(parts)

    def say(self, line: str) -> None:
        if self._rich is not None:
            self._rich.console.print(line, markup=False, highlight=False)
        else:
            print(line, file=self.stream, flush=True)

    def refresh(self) -> None:
        if self._rich is None:
            return
        bar = self.bar
        job_left = _clock(self.time_left())
        self._rich.update(
            self._job,
            completed=self.done_runs,
            description=f"{self.title} [{self.done_runs}/{len(self.costs)} runs]",
            info=f"{_clock(time.perf_counter() - self.started)} elapsed, {job_left} left",
        )
        if bar is None:
            self._rich.update(self._run, visible=False)
            return
        info = " ".join(x for x in (bar.description, bar.postfix) if x)
        self._rich.update(
            self._run,
            visible=True,
            total=bar.total,
            completed=bar.n,
            description=self.label or "training",
            info=f"{info} | {_clock(bar.elapsed())} elapsed, {_clock(bar.time_left())} left",
        )

    def close(self) -> None:
        if self._rich is not None:
            self.refresh()
            self._rich.stop()
            self._rich = None

    def _start_rich(self) -> None:
        # rich loads only for a live display on a terminal
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._rich = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            console=Console(file=self.stream),
            refresh_per_second=4,
        )
        self._job = self._rich.add_task(self.title, total=len(self.costs), info="")
        self._run = self._rich.add_task("", total=1, info="", visible=False)
        self._rich.start()


def open_step_bar(progress: bool | Display | None, total: int, initial: int = 0) -> StepBar | None:
    """The step bar a training run reports to: the caller's display (a study's), a display
    of its own (``progress=True``), or none."""
    if isinstance(progress, Display):
        return progress.step_bar(total, initial)
    if not progress:
        return None
    display = Display((1.0,), title="run")
    display.start_run(0, "")
    bar = display.step_bar(total, initial)
    bar.owns_display = True
    return bar
