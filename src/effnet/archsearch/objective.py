"""The search's objective: accuracy traded against multiply-adds (pure functions).

EfficientNet section 4: "we use the same search space as (Tan et al., 2019), and use
ACC(m) x [FLOPS(m)/T]^w as the optimization goal, where ACC(m) and FLOPS(m) denote the
accuracy and FLOPS of model m, T is the target FLOPS and w=-0.07 is a hyperparameter for
controlling the trade-off between accuracy and FLOPS"; "here we optimize FLOPS rather than
latency since we are not targeting any specific hardware device".

MnasNet (Tan et al. 2019, eq. 2) writes the exponent as w = alpha if LAT(m) <= T else
beta: alpha = beta = -0.07 is the soft constraint (a model twice as costly must be 5%
more accurate to score the same); alpha = 0, beta = -1 is the hard one (at or under T only
accuracy counts; above it the reward falls in proportion to the excess).
"""

from __future__ import annotations

import math

from effnet.errors import EffnetError

SOFT_W = -0.07  # the paper's w
HARD_BELOW, HARD_ABOVE = 0.0, -1.0  # MnasNet's hard constraint: alpha = 0, beta = -1


def reward(acc: float, macs: float, target: float, w: float = SOFT_W) -> float:
    """ACC(m) x [FLOPS(m) / T]^w, the soft constraint (the same w on both sides of T).

    ``acc`` is the accuracy in whatever unit the caller uses (a fraction or percent): the
    reward is in the same unit. ``macs`` and ``target`` are multiply-adds (the paper's
    "FLOPS")."""
    _check(acc, macs, target, w)
    return acc * (macs / target) ** w


def hard_reward(acc: float, macs: float, target: float) -> float:
    """ACC(m) x [FLOPS(m) / T]^w with w = 0 at or below T and w = -1 above (MnasNet's hard
    constraint as a reward: acc at or under the target, acc x T / FLOPS(m) above)."""
    _check(acc, macs, target, HARD_ABOVE)
    return acc * (macs / target) ** exponent(macs, target, SOFT_W, hard=True)


def exponent(macs: float, target: float, w: float, hard: bool) -> float:
    """The exponent the objective applies to a model of ``macs`` multiply-adds."""
    if not hard:
        return w
    return HARD_BELOW if macs <= target else HARD_ABOVE


def score(acc: float, macs: float, target: float, w: float, hard: bool) -> float:
    """:func:`hard_reward` when ``hard``, else :func:`reward` with ``w``."""
    return hard_reward(acc, macs, target) if hard else reward(acc, macs, target, w)


def iso_accuracy(value: float, macs: float, target: float, w: float, hard: bool) -> float:
    """The accuracy a model of ``macs`` multiply-adds needs to score ``value`` (the
    objective's iso-line through that reward)."""
    _check(value, macs, target, w)
    return value / (macs / target) ** exponent(macs, target, w, hard)


def check_target(target: float, w: float) -> None:
    """One-line errors for a target or exponent the objective cannot use."""
    if isinstance(target, bool) or not isinstance(target, int | float):
        raise EffnetError(f"target multiply-adds must be a number, got {target!r}")
    if not (math.isfinite(target) and target > 0):
        raise EffnetError(f"target multiply-adds must be positive, got {target:g}")
    if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w):
        raise EffnetError(f"w must be a finite number, got {w!r}")
    if w > 0:
        raise EffnetError(f"w must be <= 0 (w > 0 would reward cost), got {w:g}")


def _check(acc: float, macs: float, target: float, w: float) -> None:
    check_target(target, w)
    if not (math.isfinite(acc) and acc >= 0):
        raise EffnetError(f"accuracy must be a number >= 0, got {acc!r}")
    if not (math.isfinite(macs) and macs > 0):
        raise EffnetError(f"multiply-adds must be positive, got {macs!r}")
