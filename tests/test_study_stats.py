"""The study's confidence intervals against known answers (effnet.study.stats)."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from effnet.errors import EffnetError
from effnet.study.stats import (
    bootstrap_interval,
    compare,
    holm,
    holm_adjust,
    sentence,
    t_interval,
    words,
)


def test_t_interval_hand_computed():
    # mean 2, sample sd 1.5811 (values 0..4), n = 5, t(0.975, 4) = 2.776445
    lo, hi = t_interval([0.0, 1.0, 2.0, 3.0, 4.0])
    half = 2.7764451051977987 * math.sqrt(2.5) / math.sqrt(5)
    assert lo == pytest.approx(2 - half, abs=1e-9) and hi == pytest.approx(2 + half, abs=1e-9)
    assert t_interval([1.0, 1.0, 1.0]) == (1.0, 1.0)
    with pytest.raises(EffnetError, match="at least two"):
        t_interval([1.0])


def test_paired_by_seed_cancels_shared_noise():
    # seed effects of +-3 points shared by both methods; compound is 0.5 better every seed
    seed_effect = {0: 3.0, 1: -3.0, 2: 1.0, 3: -2.0, 4: 0.5}
    width = {s: 80 + e for s, e in seed_effect.items()}
    compound = {s: 80.5 + e + 0.01 * s for s, e in seed_effect.items()}
    c = compare("compound", compound, "width", width)
    assert c.seeds == (0, 1, 2, 3, 4) and c.mean == pytest.approx(0.52)
    assert 0 < c.t_low < c.mean < c.t_high < 0.6
    assert words(c) == "compound wins"
    assert "**compound wins**" in sentence(c) and "paired by seed, n = 5" in sentence(c)


def test_words_follow_the_interval():
    assert words(compare("a", {0: 1, 1: 2, 2: 3}, "b", {0: 1.5, 1: 1.0, 2: 3.2})) == (
        "no detectable difference at this scale"
    )
    assert words(compare("a", {0: 1, 1: 2, 2: 3}, "b", {0: 2, 1: 3.1, 2: 4.05})) == "b wins"
    one = compare("a", {0: 1.0, 7: 2.0}, "b", {0: 0.0})  # only seed 0 is shared
    assert one.seeds == (0,) and one.t_low is None and "one seed only" in words(one)
    with pytest.raises(EffnetError, match="share no finished seed"):
        compare("a", {0: 1.0}, "b", {1: 1.0})


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-10, 10, allow_nan=False), min_size=3, max_size=8))
def test_intervals_contain_the_mean(values):
    mean = sum(values) / len(values)
    lo, hi = t_interval(values)
    assert lo - 1e-9 <= mean <= hi + 1e-9
    blo, bhi = bootstrap_interval(values, resamples=500)
    assert min(values) - 1e-9 <= blo <= bhi <= max(values) + 1e-9


# -- several comparisons at once: Holm ---------------------------------------------------
def test_holm_adjusts_as_the_textbook_example():
    """p = 0.01, 0.04, 0.03 (three pairs): 0.03, 0.06, 0.06; only the first is rejected, and
    the later two keep the level of the first not rejected (1 - 0.05 / 2)."""
    adjusted, levels = holm_adjust([0.01, 0.04, 0.03])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06])
    assert levels == pytest.approx([1 - 0.05 / 3, 1 - 0.05 / 2, 1 - 0.05 / 2])
    adjusted, levels = holm_adjust([0.001, 0.01, 0.02])  # all rejected: alpha/3, /2, /1
    assert adjusted == pytest.approx([0.003, 0.02, 0.02])
    assert levels == pytest.approx([1 - 0.05 / 3, 1 - 0.05 / 2, 0.95])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=6))
def test_holm_never_lowers_a_p_value_and_keeps_their_order(ps):
    adjusted, levels = holm_adjust(ps)
    assert all(a >= p - 1e-12 and a <= 1.0 for a, p in zip(adjusted, ps, strict=True))
    by_p = sorted(range(len(ps)), key=lambda i: ps[i])
    assert all(adjusted[i] <= adjusted[j] + 1e-12 for i, j in zip(by_p, by_p[1:]))
    assert all(0.95 - 1e-12 <= v <= 1 - 0.05 / len(ps) + 1e-12 for v in levels)


def test_holm_intervals_are_the_t_intervals_at_their_level():
    seeds = range(8)
    base = {s: 70.0 + 0.3 * s for s in seeds}
    clear = {s: base[s] + 2.0 + 0.1 * (s % 3) for s in seeds}  # compound clearly better
    noise = {s: base[s] + (0.2 if s % 2 else -0.25) for s in seeds}  # no difference
    comps = [compare("compound", clear, "depth", base), compare("compound", noise, "width", base)]
    first, second = holm(comps)
    assert first.p_holm == pytest.approx(2 * first.p) and first.level == pytest.approx(0.975)
    assert (first.low, first.high) == pytest.approx(
        t_interval(list(first.comparison.differences), 0.975)
    )
    assert first.words == "compound wins" and first.low > 0
    assert second.words == "no detectable difference at this scale"
    assert "Holm-adjusted 97.5% t-interval" in first.sentence()
