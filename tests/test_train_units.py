"""Recipes as data, checkpoint fallback, RNG round trips, the batch order, EMA."""

import random

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from effnet.errors import EffnetError
from effnet.train import checkpoint
from effnet.train.distributed import Dist, EpochBatchSampler, ShardSampler
from effnet.train.ema import adapted_decay, make_ema
from effnet.train.recipe import RECIPES, Recipe, apply_overrides, resolve


def test_paper_recipe_is_section_5_2():
    r = RECIPES["paper"]
    assert (r.optimizer, r.rmsprop_decay, r.momentum, r.opt_eps) == ("rmsprop_tf", 0.9, 0.9, 1e-3)
    assert (r.lr, r.warmup_epochs, r.decay_rate, r.decay_epochs) == (0.016, 5, 0.97, 2.4)
    assert (r.weight_decay, r.label_smoothing, r.drop_path, r.ema_decay) == (1e-5, 0.1, 0.2, 0.9999)


def test_recipe_json_round_trip_and_overrides(tmp_path):
    r = apply_overrides(RECIPES["cpu"], ["epochs=3", "randaugment=[2,5]", "amp=bf16", "seed=7"])
    assert (r.epochs, r.randaugment, r.amp, r.seed) == (3, (2, 5), "bf16", 7)
    path = tmp_path / "r.json"
    path.write_text(r.to_json())
    assert resolve(str(path)) == r
    assert Recipe.from_json(r.to_json()) == r


@pytest.mark.parametrize(
    "bad, message",
    [
        (["nope=1"], "nope=1"),
        (["optimizer=lamb"], "optimizer"),
        (["amp=fp16"], "amp"),
        (["ema_decay=1.5"], "ema_decay"),
    ],
)
def test_recipe_errors_name_the_field(bad, message):
    with pytest.raises(EffnetError, match=message):
        apply_overrides(Recipe(), bad)


def test_unknown_recipe_name():
    with pytest.raises(EffnetError, match="unknown recipe 'fast'"):
        resolve("fast")


def test_rng_state_round_trip():
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    state = checkpoint.rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    checkpoint.set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def test_truncated_last_checkpoint_falls_back_to_previous(tmp_path, capsys):
    checkpoint.save(tmp_path, {"step": 3, "w": torch.arange(1000.0)})
    checkpoint.save(tmp_path, {"step": 6, "w": torch.arange(1000.0) * 2})
    assert checkpoint.load_latest(tmp_path)["step"] == 6
    last = tmp_path / checkpoint.LAST
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # cut mid-file
    loaded = checkpoint.load_latest(tmp_path)
    assert loaded["step"] == 3 and torch.equal(loaded["w"], torch.arange(1000.0))
    assert "last.pt is damaged" in capsys.readouterr().err
    (tmp_path / checkpoint.PREVIOUS).write_bytes(b"garbage")
    with pytest.raises(EffnetError, match="no usable checkpoint"):
        checkpoint.load_latest(tmp_path)


@given(st.integers(64, 300), st.sampled_from([8, 16, 32]), st.integers(0, 3), st.integers(0, 5))
def test_batch_order_same_for_any_world_size_and_resumable(n, batch, seed, epoch):
    one = list(EpochBatchSampler(n, batch, seed, epoch, Dist()))
    two = [list(EpochBatchSampler(n, batch, seed, epoch, Dist(rank=r, world=2))) for r in (0, 1)]
    assert [a + b for a, b in zip(*two)] == one  # the global batch does not depend on ranks
    assert len(one) == n // batch and len({i for b in one for i in b}) == len(one) * batch
    start = len(one) // 2
    assert list(EpochBatchSampler(n, batch, seed, epoch, Dist(), start=start)) == one[start:]
    assert one != list(EpochBatchSampler(n, batch, seed, epoch + 1, Dist()))


def test_eval_shards_cover_every_image_once():
    shards = [list(ShardSampler(10, Dist(rank=r, world=3))) for r in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(10))


def test_batch_not_divisible_by_ranks():
    with pytest.raises(EffnetError, match="not divisible by 3"):
        EpochBatchSampler(100, 16, 0, 0, Dist(rank=0, world=3))


def test_ema_decay_adapts_to_run_length():
    assert adapted_decay(109_000, None) == pytest.approx(0.9999, abs=1e-5)  # the paper's run
    assert adapted_decay(2000, None) == pytest.approx(0.995)
    assert adapted_decay(20, None) == 0.9
    assert adapted_decay(20, 0.5) == 0.5


def test_ema_averages_parameters_and_bn_statistics():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ema = make_ema(model, decay=0.5)
    ema.update_parameters(model)  # first update copies
    with torch.no_grad():
        model[0].weight.add_(1.0)
        model[1].running_mean.fill_(4.0)
        model[1].num_batches_tracked.fill_(7)
    w0 = ema.module[0].weight.clone()
    ema.update_parameters(model)  # warm-up decay min(0.5, 2/11) = 2/11
    d = 2 / 11
    assert torch.allclose(ema.module[0].weight, d * w0 + (1 - d) * model[0].weight)
    assert torch.allclose(ema.module[1].running_mean, torch.full((2,), (1 - d) * 4.0))
    assert ema.module[1].num_batches_tracked.item() == 7  # integer buffers are copied


@pytest.mark.parametrize(
    ("pair", "message"),
    [("zero_init_last=maybe", "zero_init_last must be true or false"),
     ("lr=fast", "lr must be a number"), ("ema=1", "ema must be true or false")],
)  # fmt: skip
def test_mistyped_recipe_values_are_one_line_errors(pair, message):
    from effnet.train import RECIPES, apply_overrides

    with pytest.raises(EffnetError, match=message):
        apply_overrides(RECIPES["cpu"], [pair])
