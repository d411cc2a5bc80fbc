"""Arms that differ only in resolution are augmented alike (issue: study arms trained
alike): the crop is a declared recipe field, drawn in source pixels from a stream of its
own, then resized by the one resampler eval uses too."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
import torch
from conftest import FASHION_MNIST_SLICE
from hypothesis import given, settings
from hypothesis import strategies as st

from effnet.data import BatchTransform
from effnet.data.augment import arm_agreement, resized_crop_boxes
from effnet.data.fashion_mnist import read_idx
from effnet.errors import EffnetError
from effnet.study import Study, plan
from effnet.study.presets import quick
from effnet.train.recipe import RECIPES, Recipe
from effnet.train.runfolder import recipe_of

EXAMPLES = Path(__file__).parent.parent / "examples"
RESIZED = dict(crop="resized", crop_scale=(0.35, 1.0), interpolation="bicubic")


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """256 real Fashion-MNIST training images (the repository's slice), uint8 [N, 1, 28, 28]."""
    x = read_idx(FASHION_MNIST_SLICE / "train-images-idx3-ubyte.gz")[:256]
    return torch.from_numpy(x.copy())[:, None]


def test_27_and_28_px_see_the_same_crops(images):
    """Measured before the change: 0.45 on these images (the crop was switched by the
    source size, and drawn at the output side)."""
    assert arm_agreement(images, 27, 28, **RESIZED, randaugment=None) >= 0.99
    assert arm_agreement(images, 27, 28, **RESIZED, randaugment=(2, 9)) >= 0.9
    assert arm_agreement(images, 27, 28, crop="auto", randaugment=None) < 0.6  # the old rule


def _study_pairs(study: Study) -> list[tuple[int, int]]:
    sides = sorted({p.arch.resolution for p in plan(study)})
    return list(itertools.combinations(sides, 2))


@pytest.mark.parametrize(
    "study",
    [quick(), Study.load(EXAMPLES / "study-fmnist-fair.json")],
    ids=["quick", "fair"],
)
def test_every_pair_of_resolutions_a_study_uses_sees_the_same_crops(study, images):
    pairs = _study_pairs(study)
    assert pairs, "the study trains at more than one resolution"
    ra = study.training_recipe().augment_args()
    for a, b in pairs:  # the study's own augmentation, and a random-resized crop, compared
        # at the smaller side (the detail both hold)
        assert arm_agreement(images, a, b, at="smaller", **ra) >= 0.99, (a, b)
        resized = arm_agreement(images, a, b, at="smaller", **RESIZED, randaugment=None)
        assert resized >= 0.99, (a, b)


def test_the_crops_do_not_depend_on_other_draws_of_the_global_rng(images):
    """A deeper arm draws more drop-path noise; its crops must not move."""
    views = []
    for noise in (0, 1000):
        t = BatchTransform(28, (0.0,), (1.0,), train=True, **RESIZED, randaugment=(2, 9))
        t.use_own_stream(5)
        torch.rand(noise)
        first = t(images[:32])
        torch.rand(noise)  # between batches too
        views.append((first, t(images[32:64])))
    assert torch.equal(views[0][0], views[1][0]) and torch.equal(views[0][1], views[1][1])


def test_train_and_eval_resample_alike(images):
    train = BatchTransform(20, (0.0,), (1.0,), train=True, crop="none", hflip=False,
                           randaugment=None, interpolation="bicubic")  # fmt: skip
    evaluation = BatchTransform(20, (0.0,), (1.0,), train=False, interpolation="bicubic")
    assert torch.equal(train(images[:8]), evaluation(images[:8]))


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 300), w=st.integers(1, 300),
    lo=st.floats(0.01, 1.0), span=st.floats(0.0, 1.0),
    r_lo=st.floats(0.2, 1.0), r_hi=st.floats(1.0, 5.0),
)  # fmt: skip
def test_crop_boxes_lie_in_the_image_and_use_as_many_draws_whatever_the_size(
    h, w, lo, span, r_lo, r_hi
):
    scale = (lo, min(1.0, lo + span))
    log_ratio = (math.log(r_lo), math.log(r_hi))
    torch.manual_seed(0)
    boxes = resized_crop_boxes(16, h, w, scale, log_ratio)
    after = torch.rand(1)
    top, left, bh, bw = boxes.T
    assert (bh >= 1).all() and (bw >= 1).all() and (top >= 0).all() and (left >= 0).all()
    assert (top + bh <= h).all() and (left + bw <= w).all()
    torch.manual_seed(0)
    resized_crop_boxes(16, 28, 28, scale, log_ratio)  # another size: the stream moves alike
    assert torch.equal(torch.rand(1), after)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"crop": "random"}, "recipe crop must be one of ('resized', 'pad', 'none')"),
        ({"crop_scale": [0.6, 0.2]}, "recipe crop_scale must be [low, high]"),
        ({"crop_scale": [0.0, 1.0]}, "recipe crop_scale must be [low, high]"),
        ({"crop_ratio": [1.0]}, "recipe crop_ratio must be [low, high]"),
        ({"crop_size": 3}, "recipe: unknown field(s) crop_size"),
        ({"report_weights": "top"}, "recipe report_weights must be one of"),
    ],
)
def test_an_augmentation_field_out_of_range_is_a_one_line_error(changes, message):
    with pytest.raises(EffnetError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):  # fmt: skip
        Recipe.from_dict({**RECIPES["cpu"].to_dict(), **changes})


def test_a_study_with_a_bad_augmentation_is_refused_before_anything_trains(tmp_path, capsys):
    from effnet.cli import main

    path = tmp_path / "s.json"
    s = json.loads((EXAMPLES / "study-fmnist.json").read_text())
    path.write_text(json.dumps({**s, "recipe_overrides": {"crop": "centre"}}))
    assert main(["study", str(path), "--out", str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err
    assert "crop must be one of" in err and err.count("\n") == 1
    assert not (tmp_path / "out" / "runs").exists()


def test_runs_made_before_keep_their_crop_rule_and_reported_weights():
    old = RECIPES["cpu"].to_dict()
    for key in ("crop", "crop_scale", "crop_ratio", "report_weights"):
        old.pop(key)
    r = recipe_of({"recipe": old})
    assert r.crop == "auto" and r.report_weights == "best"
    assert recipe_of({"recipe": RECIPES["cpu"].to_dict()}) == RECIPES["cpu"]


def test_the_augmentation_is_named_in_one_line():
    line = Recipe(crop="resized", crop_scale=(0.35, 1.0), randaugment=None).augmentation()
    assert line.startswith("random-resized crop, scale (0.35, 1), ratio (0.75, 1.33)")
    assert "flip; no RandAugment; no erasing" in line
    assert RECIPES["cpu"].augmentation().startswith("no crop; flip;")
