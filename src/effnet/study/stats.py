"""Is one scaling method better than another? Paired differences over seeds, with intervals.

Within a study every method is trained once per seed, and a seed fixes the order of the
training images (the batch sampler is seeded), the augmentation draws and the
initialisation. Runs with the same seed therefore share their data order, and the
difference between two methods is taken seed by seed (a paired design: seed-to-seed
variation common to both cancels).

:func:`compare` gives the mean difference with a 95% interval two ways: Student's t on the
paired differences (``scipy.stats.t``; the headline) and a percentile bootstrap of their
mean (``scipy.stats.bootstrap``, a check that does not assume normality; with 5 seeds it
is narrower than it should be). :func:`words` turns the t-interval into the report's
verdict: "A wins", "B wins" or "no detectable difference at this scale".
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any

from effnet.errors import EffnetError


@dataclass(frozen=True)
class Comparison:
    """``a`` minus ``b`` over the seeds both have, in points of top-1."""

    a: str
    b: str
    seeds: tuple[int, ...]
    differences: tuple[float, ...]
    mean: float
    std: float  # of the per-seed differences
    t_low: float | None  # Student's t interval of the mean difference (None below 2 seeds)
    t_high: float | None
    boot_low: float | None  # percentile bootstrap interval of the mean (None below 3 seeds)
    boot_high: float | None
    confidence: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def t_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Student's t confidence interval of the mean of ``values`` (at least two)."""
    # scipy loads only when an interval is computed (the study's plan does not need it)
    from scipy import stats

    n = len(values)
    if n < 2:
        raise EffnetError("a confidence interval needs at least two seeds")
    mean = statistics.fmean(values)
    sem = statistics.stdev(values) / math.sqrt(n)
    if sem == 0.0:
        return mean, mean
    half = stats.t.ppf((1 + confidence) / 2, n - 1) * sem
    return mean - half, mean + half


def bootstrap_interval(
    values: list[float], confidence: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (at least three)."""
    # scipy loads only when an interval is computed
    import numpy as np
    from scipy import stats

    if len(values) < 3:
        raise EffnetError("a bootstrap interval needs at least three seeds")
    if max(values) == min(values):
        return values[0], values[0]
    res = stats.bootstrap(
        (np.asarray(values, dtype=float),),
        np.mean,
        confidence_level=confidence,
        n_resamples=resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def compare(
    a: str, by_seed_a: dict[int, float], b: str, by_seed_b: dict[int, float],
    confidence: float = 0.95,
) -> Comparison:  # fmt: skip
    """``a`` minus ``b`` paired by seed (only seeds both finished count)."""
    seeds = tuple(sorted(set(by_seed_a) & set(by_seed_b)))
    if not seeds:
        raise EffnetError(f"{a} and {b} share no finished seed; nothing to compare")
    diffs = [by_seed_a[s] - by_seed_b[s] for s in seeds]
    mean = statistics.fmean(diffs)
    std = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
    t = t_interval(diffs, confidence) if len(diffs) >= 2 else (None, None)
    boot = bootstrap_interval(diffs, confidence) if len(diffs) >= 3 else (None, None)
    return Comparison(a, b, seeds, tuple(diffs), mean, std, *t, *boot, confidence)


def words(c: Comparison) -> str:
    """The verdict that follows from the t-interval of ``a`` minus ``b``."""
    if c.t_low is None or c.t_high is None:
        return f"one seed only: {c.a} minus {c.b} = {c.mean:+.2f} points, no interval"
    if c.t_low > 0:
        return f"{c.a} wins"
    if c.t_high < 0:
        return f"{c.b} wins"
    return "no detectable difference at this scale"


def sentence(c: Comparison) -> str:
    """One line for the report: the difference, both intervals, the seeds and the words."""
    if c.t_low is None or c.t_high is None:
        return words(c) + "."
    boot = f"; bootstrap [{c.boot_low:+.2f}, {c.boot_high:+.2f}]" if c.boot_low is not None else ""
    return (
        f"{c.a} minus {c.b}: {c.mean:+.2f} points, {c.confidence:.0%} t-interval "
        f"[{c.t_low:+.2f}, {c.t_high:+.2f}]{boot} (paired by seed, n = {len(c.seeds)}): "
        f"**{words(c)}**."
    )
