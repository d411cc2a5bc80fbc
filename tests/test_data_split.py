"""Stratified minival / subset draws: exact sizes, proportions, determinism, disjointness."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from effnet.data import stratified_pick, stratified_split
from effnet.data.split import per_class_counts
from effnet.errors import EffnetError

labels_st = st.lists(st.integers(0, 6), min_size=1, max_size=300).map(np.array)


@settings(max_examples=60, deadline=None)
@given(labels=labels_st, frac=st.floats(0, 1), seed=st.integers(0, 2**31))
def test_pick_is_exact_proportional_and_deterministic(labels, frac, seed):
    count = int(frac * len(labels))
    picked = stratified_pick(labels, count, seed)
    assert len(picked) == count == len(set(picked.tolist()))
    assert np.array_equal(picked, stratified_pick(labels, count, seed))
    for cls in np.unique(labels):
        want = count * np.mean(labels == cls)
        got = np.sum(labels[picked] == cls)
        assert abs(got - want) < 1.0 + 1e-9


@settings(max_examples=60, deadline=None)
@given(labels=labels_st, frac=st.floats(0, 0.99), seed=st.integers(0, 2**31))
def test_split_is_a_disjoint_cover(labels, frac, seed):
    holdout = int(frac * len(labels))
    kept, held = stratified_split(labels, holdout, seed)
    assert len(held) == holdout
    assert not set(kept.tolist()) & set(held.tolist())
    assert sorted([*kept.tolist(), *held.tolist()]) == list(range(len(labels)))


def test_largest_remainder_on_uneven_classes():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    assert per_class_counts(labels, 7) == {0: 4, 1: 2, 2: 1}  # 3.5, 2.1, 1.4 -> 3+1, 2, 1
    assert sum(per_class_counts(labels, 33).values()) == 33


def test_different_seeds_draw_different_images():
    labels = np.repeat(np.arange(10), 600)
    a = stratified_pick(labels, 500, 0)
    b = stratified_pick(labels, 500, 1)
    assert not np.array_equal(a, b)
    assert np.bincount(labels[a]).tolist() == [50] * 10


def test_holding_out_everything_is_refused():
    with pytest.raises(EffnetError, match="nothing to train on"):
        stratified_split(np.zeros(10, dtype=int), 10, 0)
    with pytest.raises(EffnetError, match="cannot draw 11"):
        stratified_pick(np.zeros(10, dtype=int), 11, 0)


def test_data_spec_round_trips_through_json_and_rejects_bad_fields():
    import dataclasses
    import json

    from effnet.data import DataSpec

    spec = DataSpec(source="/data/pets", minival=100, subset=500, image_size=64, seed=2)
    again = DataSpec.from_dict(json.loads(json.dumps(dataclasses.asdict(spec))))
    assert again == spec
    with pytest.raises(EffnetError, match="data spec: unknown field"):
        DataSpec.from_dict({"source": "fashion-mnist", "bogus": 1})
    with pytest.raises(EffnetError, match="minival"):
        DataSpec(minival=-1)
