"""Types and parts of a study config, checked when it is loaded (before any training).

A study's JSON may hold ``"seeds": [0.5]`` or ``"data": "fashion-mnist"``; each is a
one-line error naming the field, not a failure at the first point an hour later.
"""

from __future__ import annotations

import math
from typing import Any

from effnet.errors import EffnetError
from effnet.record import checked_fields
from effnet.scaling import check_coefficients

SWEEP_KEYS = ("width", "depth", "resolution")  # Figure 3: one dimension at a time
# Table 7: one model per method. "compound" is fitted to the budget on the measured
# multiply-adds of the rounded networks; "compound-paper" takes the paper's balance
# (d, w, r) = (alpha, beta, gamma)^phi at the phi the nominal constraint gives for the budget
METHODS = ("depth", "width", "resolution", "compound", "compound-paper")


def _as_list(v: Any, where: str) -> list:
    if not isinstance(v, list | tuple):
        raise EffnetError(f"study: {where} must be a list, got {v!r}")
    return list(v)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def check_types(s: Any) -> None:
    """Each field has its declared kind (JSON may hold "seeds": [0.5] or "data": "x")."""
    for key in ("name", "baseline", "recipe"):
        v = getattr(s, key)
        if not isinstance(v, str) or not v or not v.isprintable():
            raise EffnetError(f"study: {key} must be a non-empty printable string, got {v!r}")
    for key in ("baseline_phi", "budget"):
        v = getattr(s, key)
        if v is not None and not _is_number(v):
            raise EffnetError(f"study: {key} must be a finite number or null, got {v!r}")
    for key in ("baseline_width", "baseline_depth", "tolerance"):
        if not _is_number(getattr(s, key)):
            raise EffnetError(f"study: {key} must be a finite number, got {getattr(s, key)!r}")
    if s.resolution is not None and (
        isinstance(s.resolution, bool) or not isinstance(s.resolution, int)
    ):
        raise EffnetError(f"study: resolution must be whole pixels, got {s.resolution!r}")
    for key in ("data", "recipe_overrides", "sweeps", "baseline_fields"):
        if not isinstance(getattr(s, key), dict):
            raise EffnetError(f"study: {key} must be an object, got {getattr(s, key)!r}")
    for seed in _as_list(s.seeds, "seeds"):
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
            raise EffnetError(f"study: seeds must be whole numbers in 0..2**32-1, got {seed!r}")
    for m in _as_list(s.methods, "methods"):
        if not isinstance(m, str):
            raise EffnetError(f"study: methods must be names, got {m!r}")
    for key in ("fig4_width", "coefficients", "epoch_multiples", "family"):
        for v in _as_list(getattr(s, key), key):
            if not _is_number(v):
                raise EffnetError(f"study: {key} must hold finite numbers, got {v!r}")
    for pair in _as_list(s.fig4_at, "fig4_at"):
        if not isinstance(pair, list | tuple) or not all(_is_number(v) for v in pair):
            raise EffnetError(f"study: fig4_at entries are [depth, resolution] pairs, got {pair!r}")
    for k, values in s.sweeps.items():
        if not all(_is_number(v) for v in _as_list(values, f"sweeps.{k}")):
            raise EffnetError(f"study: sweeps.{k} must hold finite numbers, got {values!r}")


def check_parts(s: Any) -> None:
    """The data spec and the recipe the study will use, built now rather than at point 1."""
    # torch: this module's data and checks load without it
    from effnet.data.spec import DataSpec
    from effnet.train.recipe import RECIPES, Recipe

    try:
        DataSpec.from_dict(s.data)
    except EffnetError as e:
        raise EffnetError(f"study: data: {e}") from None
    try:
        if s.recipe in RECIPES:
            RECIPES[s.recipe].replace(**checked_fields(Recipe, s.recipe_overrides, "recipe"))
        else:
            checked_fields(Recipe, s.recipe_overrides, "recipe")
    except EffnetError as e:
        raise EffnetError(f"study: recipe_overrides: {e}") from None
    if len(s.coefficients) == 3:
        check_coefficients(*s.coefficients)


def _positive(values: tuple[float, ...], where: str) -> None:
    for v in values:
        if not (math.isfinite(v) and v > 0):
            raise EffnetError(f"study: {where} multipliers must be positive, got {v:g}")


def validate(s: Any) -> None:
    """Reject a study (``effnet.study.Study``) that cannot run, naming the field."""
    check_types(s)
    check_parts(s)
    unknown = sorted(set(s.sweeps) - set(SWEEP_KEYS))
    if unknown:
        raise EffnetError(
            f"study: unknown sweep key(s) {', '.join(unknown)} (known: {', '.join(SWEEP_KEYS)})"
        )
    for k, values in s.sweeps.items():
        _positive(tuple(values), f"sweeps.{k}")
    _positive(s.fig4_width, "fig4_width")
    for pair in s.fig4_at:
        if len(pair) != 2:
            raise EffnetError(f"study: fig4_at entries are [depth, resolution] pairs, got {pair}")
        _positive(tuple(pair), "fig4_at")
    if bool(s.fig4_at) != bool(s.fig4_width):
        raise EffnetError("study: fig4_at and fig4_width must be given together")
    _positive((s.baseline_width, s.baseline_depth), "baseline_width/baseline_depth")
    if s.budget is not None and not (math.isfinite(s.budget) and s.budget > 0):
        raise EffnetError(f"study: budget must be a positive multiple, got {s.budget}")
    bad = sorted(set(s.methods) - set(METHODS))
    if bad:
        raise EffnetError(
            f"study: unknown method(s) {', '.join(bad)} (known: {', '.join(METHODS)})"
        )
    if not s.seeds or len(set(s.seeds)) != len(s.seeds):
        raise EffnetError(f"study: seeds must be a non-empty list of distinct ints, got {s.seeds}")
    budgets = tuple(s.epoch_multiples)
    if not budgets or budgets[0] != 1.0 or any(b <= a for a, b in zip(budgets, budgets[1:])):
        raise EffnetError(
            "study: epoch_multiples must start at 1 (the recipe's epochs) and increase, "
            f"e.g. [1, 2]; got {list(budgets)}"
        )
    if s.resolution is not None and s.resolution < 8:
        raise EffnetError(f"study: resolution must be >= 8 pixels, got {s.resolution}")
    if len(s.coefficients) != 3:
        raise EffnetError("study: coefficients must be [alpha, beta, gamma]")
    if not 0 < s.tolerance < 1:
        raise EffnetError(f"study: tolerance must be in (0, 1), got {s.tolerance}")
    if len(set(s.family)) != len(s.family):
        raise EffnetError(f"study: family phis must be distinct, got {list(s.family)}")
    if not s.sweeps and not s.fig4_at and s.budget is None and not s.family:
        raise EffnetError(
            "study: nothing to run (give sweeps, fig4_at/fig4_width, a budget or a family)"
        )
