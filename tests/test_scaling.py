"""Compound scaling as pure functions, checked against the paper and timm's counts."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from effnet import EffnetError, compound, get_arch, round_filters, round_repeats, scale
from effnet.families.efficientnet import RELEASED
from effnet.model import build
from effnet.paper import TABLE2 as PAPER_TABLE2
from effnet.profile import count_params, macs_of, params_and_macs
from effnet.scaling import constraint, fit, fit_budget, scale_phi

# Parameter counts of timm 1.0.31's efficientnet_b0..b8 (an independent implementation),
# counted in the reference environment: ours must equal them exactly.
TIMM_PARAMS = {
    "efficientnet_b0": 5_288_548,
    "efficientnet_b1": 7_794_184,
    "efficientnet_b2": 9_109_994,
    "efficientnet_b3": 12_233_232,
    "efficientnet_b4": 19_341_616,
    "efficientnet_b5": 30_389_784,
    "efficientnet_b6": 43_040_704,
    "efficientnet_b7": 66_347_960,
    "efficientnet_b8": 87_413_142,
}


@given(c=st.integers(1, 4096), w=st.floats(0.05, 8.0), div=st.sampled_from([1, 4, 8, 16]))
def test_round_filters_properties(c, w, div):
    out = round_filters(c, w, div)
    assert out % div == 0
    assert out >= div
    assert out >= 0.9 * c * w  # the 10% rule
    assert out <= c * w + div + div / 2  # never more than one extra divisor beyond rounding


@given(layers=st.integers(1, 20), d=st.floats(0.01, 10.0))
def test_round_repeats_is_ceil(layers, d):
    out = round_repeats(layers, d)
    assert out == max(1, math.ceil(layers * d))


@settings(max_examples=30, deadline=None)
@given(phi=st.floats(-3, 3))
def test_compound_powers_and_purity(phi):
    base = get_arch("efficientnet_b0")
    before = base.to_json()
    d, w, r = compound(phi)
    assert d == pytest.approx(1.2**phi) and w == pytest.approx(1.1**phi)
    assert r == pytest.approx(1.15**phi)
    scale_phi(base, phi)
    assert base.to_json() == before  # never mutates its input


def test_scaling_by_one_is_identity():
    for name in RELEASED:
        arch = get_arch(name)
        assert scale(arch, 1.0, 1.0, 1.0) == arch


def test_b7_pure_formula_differs_from_released():
    """PAPER.md: at phi=7 the pure formula gives d=3.58, w=1.95, r=596 (B7 is 3.1, 2.0, 600)."""
    d, w, r = compound(7)
    assert (round(d, 2), round(w, 2), round(224 * r)) == (3.58, 1.95, 596)
    assert scale_phi(get_arch("efficientnet_b0"), 7).resolution == 596


def test_b0_has_exactly_5288548_parameters():
    with torch.device("meta"):
        assert count_params(build(get_arch("efficientnet_b0"), num_classes=1000)) == 5_288_548


@pytest.mark.parametrize("name", list(PAPER_TABLE2))
def test_family_matches_table_2_and_timm(name):
    """Counted on the meta device at native resolution (no compute): B0-B7 of Table 2."""
    params, macs = params_and_macs(get_arch(name))
    paper_params, paper_macs, _ = PAPER_TABLE2[name]
    assert params == TIMM_PARAMS[name]
    # the paper prints 2 significant digits; 9.11M shows as "9.2M" for B2, hence 3%
    assert params / 1e6 == pytest.approx(paper_params, rel=0.03)
    assert macs / 1e9 == pytest.approx(paper_macs, rel=0.05)


def test_b8_matches_timm():
    params, _ = params_and_macs(get_arch("efficientnet_b8"))
    assert params == TIMM_PARAMS["efficientnet_b8"]


def test_compound_scaling_grows_flops_by_about_two_to_the_phi():
    """FLOPs ~ d * w^2 * r^2 = (alpha beta^2 gamma^2)^phi = 1.92^phi with the paper's values.

    Rounding makes it a staircase: stage depths are ceil(L * d) with L in 1..4, so at
    phi=1 B0's 16 blocks become 23 (1.44x instead of 1.2x); that is why the total may run
    up to 45% above 1.92^phi, and why each further unit of phi, where ceil matters less,
    multiplies FLOPs by 1.92 within 10%.
    """
    base = macs_of(get_arch("efficientnet_b0"))
    c = constraint(1.2, 1.1, 1.15)
    macs = [base] + [macs_of(scale_phi(get_arch("efficientnet_b0"), phi)) for phi in (1, 2, 3, 4)]
    for phi in (1, 2, 3, 4):
        assert 0.95 * c**phi <= macs[phi] / base <= 1.45 * c**phi
    for phi in (2, 3, 4):
        assert macs[phi] / macs[phi - 1] == pytest.approx(c, rel=0.10)


def test_fit_budget_finds_largest_model_under_target():
    b0 = get_arch("efficientnet_b0")
    f = fit_budget(b0, 1.8e9, macs_of)
    assert f.cost <= 1.8e9
    assert f.relative_error > -0.05
    bigger = macs_of(scale_phi(b0, f.value + 0.01))
    assert bigger > 1.8e9 or bigger == f.cost
    assert f.value == pytest.approx(1.886, abs=0.02)


@settings(max_examples=30, deadline=None)
@given(target=st.floats(28.0, 1000.0))
def test_fit_on_a_staircase_cost(target):
    """Pure property: with a monotone staircase cost, 'below' never exceeds the target."""
    arch = get_arch("efficientnet_b0")
    f = fit(
        lambda x: arch.replace(resolution=int(x)),
        lambda a: float(a.resolution // 8),
        target,
        224,
        9000,
    )
    assert f.cost <= target < f.cost + 1 or f.arch.resolution >= 8999


def test_unfittable_budget_is_an_error():
    with pytest.raises(EffnetError, match="no model fits a budget"):
        fit_budget(get_arch("efficientnet_b0"), 1e3, macs_of, phi_range=(-2, 2))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(alpha=0.9), "alpha must be a finite number >= 1"),
        (dict(gamma=float("nan")), "gamma must be a finite number >= 1"),
        (dict(alpha=1.5, tolerance=0.1), "is not within 0.1 of 2"),
    ],
)
def test_invalid_coefficients(kwargs, message):
    with pytest.raises(EffnetError, match=message):
        compound(1.0, **kwargs)


@pytest.mark.parametrize("field", ["depth", "width", "resolution_mult"])
def test_non_positive_multipliers_rejected(field):
    label = field.removesuffix("_mult")
    with pytest.raises(EffnetError, match=f"{label} multiplier must be a positive"):
        scale(get_arch("efficientnet_b0"), **{field: -1.0})


@given(st.floats(-6, 10, allow_nan=False))
def test_nearest_phi_inverts_the_formula(phi):
    from effnet.scaling import nearest_phi

    assert nearest_phi(*compound(phi)) == pytest.approx(phi, abs=1e-9)


def test_formula_table_says_how_far_the_released_models_are_from_phi():
    """B7's released (3.1, 2.0, 600) against the formula's (3.58, 1.95, 596) at phi = 7."""
    from effnet.families.efficientnet import B0
    from effnet.scaling import formula_rows

    rows = {r["model"]: r for r in formula_rows(RELEASED, B0.resolution)}
    b7 = rows["efficientnet_b7"]
    assert b7["phi"] == 7 and (b7["depth"], b7["width"], b7["resolution"]) == (3.1, 2.0, 600)
    assert b7["formula_depth"] == pytest.approx(3.583, abs=1e-3)
    assert b7["formula_width"] == pytest.approx(1.949, abs=1e-3)
    assert round(b7["formula_resolution"]) == 596
    assert 6.5 < b7["nearest_phi"] < 6.8  # the released B7 is a little below phi = 7
    assert rows["efficientnet_b0"]["nearest_phi"] == 0


def test_effective_multipliers_show_what_rounding_did():
    """B0 at width 0.35, 32 px, phi = 1: nominal depth 1.2, effective 23/16 blocks = 1.44
    with the paper's rounding (the quick study's proxy before the fair-proxy fields)."""
    from effnet.scaling import effective_multipliers
    from effnet.study.study import Study, baseline_arch

    base = baseline_arch(Study(name="q", baseline_width=0.35, resolution=32))
    assert effective_multipliers(base, base) == (1.0, 1.0, 1.0)
    d, w, r = effective_multipliers(base, scale_phi(base, 1.0))
    assert (base.num_blocks, d) == (16, 23 / 16)
    assert 1.0 < w < 1.1 and r == 37 / 32
    with pytest.raises(EffnetError, match="not a scaling of it"):
        effective_multipliers(base, get_arch("resnet50"))


def test_effective_multipliers_hand_counted_mobilenet_v2():
    """MobileNetV2 (Table 3's second baseline): 17 blocks in stages of 1,2,3,4,3,3,1 and
    16..320 channels. Depth 1.5 rounds each stage up: 2,3,5,6,5,5,2 = 28 blocks; width 1.4
    rounds 22.4, 33.6, 44.8, 89.6, 134.4, 224, 448 to multiples of 8 (never below 90%):
    24, 32, 48, 88, 136, 224, 448."""
    from effnet.scaling import effective_multipliers

    base = get_arch("mobilenet_v2")
    assert [s.layers for s in base.stages] == [1, 2, 3, 4, 3, 3, 1]
    assert [s.out_channels for s in base.stages] == [16, 24, 32, 64, 96, 160, 320]
    scaled = scale(base, depth=1.5, width=1.4, resolution_mult=1.25)
    assert [s.layers for s in scaled.stages] == [2, 3, 5, 6, 5, 5, 2]
    assert [s.out_channels for s in scaled.stages] == [24, 32, 48, 88, 136, 224, 448]
    d, w, r = effective_multipliers(base, scaled)
    hand = (24 / 16 * 32 / 24 * 48 / 32 * 88 / 64 * 136 / 96 * 224 / 160 * 448 / 320) ** (1 / 7)
    assert d == 28 / 17 and w == pytest.approx(hand) and r == 280 / 224


def test_the_old_spelling_of_the_resolution_multiplier_says_the_new_one():
    with pytest.raises(EffnetError, match=r"resolution_mult=2\.0; resolution means pixels"):
        scale(get_arch("efficientnet_b0"), resolution=2.0)
