"""RMSProp-TF against a hand computation, parameter groups, and the learning-rate schedule."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from effnet.hub import create_model
from effnet.train.optim import (
    RMSpropTF,
    fraction_done,
    lr_factor,
    make_optimizer,
    param_groups,
    peak_lr,
    stage_side,
)
from effnet.train.recipe import RECIPES, Recipe


def test_rmsprop_tf_two_steps_by_hand():
    # TF1 RMSPropOptimizer: ms starts at 1; mom = m*mom + lr*g/sqrt(ms+eps); p -= mom
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = RMSpropTF([p], lr=0.1, rho=0.9, momentum=0.9, eps=1e-3)
    g1, g2 = [0.5, -1.0], [0.2, 0.4]
    ms = [1.0, 1.0]
    mom = [0.0, 0.0]
    want = [1.0, -2.0]
    for g in (g1, g2):
        p.grad = torch.tensor(g)
        opt.step()
        for i in range(2):
            ms[i] = 0.9 * ms[i] + 0.1 * g[i] ** 2
            mom[i] = 0.9 * mom[i] + 0.1 * g[i] / math.sqrt(ms[i] + 1e-3)
            want[i] -= mom[i]
    assert p.detach().tolist() == pytest.approx(want, rel=1e-6)


def test_rmsprop_tf_first_step_value():
    p = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    opt = RMSpropTF([p], lr=0.1, rho=0.9, momentum=0.9, eps=1e-3)
    p.grad = torch.tensor([0.5], dtype=torch.float64)
    opt.step()
    # ms = 0.9 * 1 + 0.1 * 0.25 = 0.925; step = 0.1 * 0.5 / sqrt(0.926)
    assert p.item() == pytest.approx(1.0 - 0.05 / math.sqrt(0.926), rel=1e-12)


def test_rmsprop_tf_differs_from_torch_eps_placement():
    """torch.optim.RMSprop puts eps outside the sqrt (and starts ms at 0): not the paper's."""
    a = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    b = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    ta = RMSpropTF([a], lr=0.01, eps=1e-3, momentum=0.0)
    tb = torch.optim.RMSprop([b], lr=0.01, alpha=0.9, eps=1e-3)
    a.grad = b.grad = torch.tensor([1e-3], dtype=torch.float64)
    ta.step()
    tb.step()
    assert 1.0 - a.item() == pytest.approx(0.01 * 1e-3 / math.sqrt(0.9 + 1e-7 + 1e-3), rel=1e-4)
    assert abs((1 - b.item()) / (1 - a.item())) > 100  # eps placement matters at small grads


def test_weight_decay_only_on_conv_and_linear_weights():
    model = create_model("efficientnet_b0", num_classes=10, width=0.25, depth=0.34)
    decay, no_decay = param_groups(model, 1e-5)
    assert decay["weight_decay"] == 1e-5 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(p.ndim > 1 for p in decay["params"])
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    assert "bn1.weight" in no_decay_names and "classifier.bias" in no_decay_names
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_optimizer_choice_and_linear_scaling():
    model = torch.nn.Linear(2, 2)
    assert isinstance(make_optimizer(model, Recipe(), 0.1), RMSpropTF)
    assert isinstance(make_optimizer(model, RECIPES["cpu"], 0.1), torch.optim.AdamW)
    assert peak_lr(Recipe(batch_size=4096)) == pytest.approx(0.256)  # the paper's 0.256 @ 4096


def test_paper_schedule_warmup_then_staircase():
    r = Recipe()  # 5 warm-up epochs, x0.97 every 2.4 epochs
    spe = 100
    assert lr_factor(0, spe, r) == pytest.approx(1 / 500)
    assert lr_factor(499, spe, r) == pytest.approx(1.0)
    assert lr_factor(500, spe, r) == pytest.approx(0.97**2)  # epoch 5 -> floor(5/2.4) = 2
    assert lr_factor(719, spe, r) == pytest.approx(0.97**2)
    assert lr_factor(720, spe, r) == pytest.approx(0.97**3)
    assert lr_factor(350 * spe - 1, spe, r) == pytest.approx(0.97**145)


def test_cosine_schedule_ends_at_floor():
    r = Recipe(schedule="cosine", epochs=10, warmup_epochs=1, min_lr_ratio=0.1)
    assert lr_factor(100, 100, r) == pytest.approx(1.0)
    assert lr_factor(550, 100, r) == pytest.approx(0.55)
    assert lr_factor(1000, 100, r) == pytest.approx(0.1)


@given(
    st.integers(1, 500),
    st.floats(0, 5),
    st.sampled_from(["step", "cosine"]),
    st.integers(0, 10_000),
)
def test_schedule_is_bounded_and_decays_after_warmup(spe, warmup, schedule, step):
    r = Recipe(schedule=schedule, warmup_epochs=warmup, epochs=20)
    f = lr_factor(step, spe, r)
    assert 0 <= f <= 1 + 1e-12
    if step >= warmup * spe:
        assert lr_factor(step + spe, spe, r) <= f + 1e-12


def test_cosine_follows_a_time_budget_when_it_is_further_along():
    r = Recipe(schedule="cosine", epochs=30, warmup_epochs=1)
    assert lr_factor(200, 100, r) == pytest.approx(0.5 * (1 + math.cos(math.pi / 29)))
    assert lr_factor(200, 100, r, time_fraction=0.5) == pytest.approx(0.5)
    assert lr_factor(200, 100, r, time_fraction=1.0) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(200, 100, Recipe(), time_fraction=0.9) == lr_factor(200, 100, Recipe())


def test_fraction_done_counts_steps_or_the_time_budget_whichever_is_further():
    r = Recipe(epochs=10)
    assert fraction_done(0, 100, r) == 0.0
    assert fraction_done(250, 100, r) == pytest.approx(0.25)
    assert fraction_done(250, 100, r, time_fraction=0.6) == pytest.approx(0.6)
    assert fraction_done(5000, 100, r) == 1.0


def test_progressive_resizing_sides_of_four_stages_from_16_to_28_px():
    # EfficientNetV2's progressive learning: equal stages, sizes linear from S0 to Se
    sides = [stage_side(28, p, 4, 16 / 28) for p in (0.0, 0.24, 0.25, 0.5, 0.74, 0.75, 1.0)]
    assert sides == [16, 16, 20, 24, 24, 28, 28]
    assert stage_side(28, 0.3, 1, 0.5) == 28  # one stage: off
    assert stage_side(224, 0.0, 3, 0.6) == 134 and stage_side(224, 0.5, 3, 0.6) == 179


@given(st.integers(1, 600), st.integers(1, 16), st.floats(0.05, 1.0), st.floats(0, 1))
def test_progressive_sides_grow_to_the_full_resolution(res, stages, start, p):
    side = stage_side(res, p, stages, start)
    assert 1 <= side <= res
    assert stage_side(res, min(1.0, p + 0.1), stages, start) >= side
    assert stage_side(res, 1.0, stages, start) == res
