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

:func:`holm` compares several pairs at once (compound minus each single dimension): the
paired t-tests' p-values adjusted by Holm's step-down method, and each t-interval at the
confidence level Holm tests that pair at (1 - alpha / (m - i) for the i-th smallest p,
held at the first pair not rejected), so that together they keep the 95%.
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


@dataclass(frozen=True)
class Adjusted:
    """One comparison of a family, Holm-adjusted."""

    comparison: Comparison
    p: float  # the paired t-test's two-sided p-value
    p_holm: float  # Holm-adjusted
    level: float  # the confidence level of its interval
    low: float
    high: float

    @property
    def words(self) -> str:
        c = self.comparison
        if self.p_holm < 1 - c.confidence and self.low > 0:
            return f"{c.a} wins"
        if self.p_holm < 1 - c.confidence and self.high < 0:
            return f"{c.b} wins"
        return "no detectable difference at this scale"

    def sentence(self) -> str:
        c = self.comparison
        return (
            f"{c.a} minus {c.b}: {c.mean:+.2f} points, Holm-adjusted {self.level:.1%} "
            f"t-interval [{self.low:+.2f}, {self.high:+.2f}], p = {self.p_holm:.3g} adjusted "
            f"(n = {len(c.seeds)}): **{self.words}**."
        )

    def to_dict(self) -> dict[str, Any]:
        return {**self.comparison.to_dict(), "p": self.p, "p_holm": self.p_holm,
                "holm_level": self.level, "holm_low": self.low, "holm_high": self.high,
                "verdict": self.words}  # fmt: skip


def holm(comparisons: list[Comparison], alpha: float = 0.05) -> list[Adjusted]:
    """The family of ``comparisons`` (each at least two seeds), Holm-adjusted, in the given
    order."""
    from scipy import stats

    if any(len(c.seeds) < 2 for c in comparisons):
        raise EffnetError("an adjusted interval needs at least two seeds per comparison")
    ps = []
    for c in comparisons:
        p = 0.0 if c.std == 0.0 and c.mean != 0.0 else 1.0 if c.std == 0.0 else float(
            stats.ttest_1samp(c.differences, 0.0).pvalue)  # fmt: skip
        ps.append(p)
    adjusted, levels = holm_adjust(ps, alpha)
    out = []
    for c, p, p_holm, level in zip(comparisons, ps, adjusted, levels, strict=True):
        low, high = t_interval(list(c.differences), level)
        out.append(Adjusted(c, p, p_holm, level, low, high))
    return out


def holm_adjust(ps: list[float], alpha: float = 0.05) -> tuple[list[float], list[float]]:
    """Holm's adjusted p-values, and each hypothesis's confidence level: 1 - alpha / (m - i)
    for the i-th smallest p (from 0), held at the first one not rejected."""
    m = len(ps)
    order = sorted(range(m), key=lambda i: ps[i])
    adjusted, levels = [0.0] * m, [0.0] * m
    running, stopped = 0.0, None
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * ps[i]))
        if stopped is None and running >= alpha:
            stopped = rank  # this and every later one: not rejected, held at this level
        adjusted[i] = running
        levels[i] = 1 - alpha / (m - (rank if stopped is None else stopped))
    return adjusted, levels
