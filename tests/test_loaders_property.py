"""Random JSON into the architecture, recipe, study and data loaders: a one-line EffnetError
or a valid record, never another exception."""

from __future__ import annotations

import dataclasses
import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from effnet.arch import Architecture
from effnet.data.spec import DataSpec
from effnet.errors import EffnetError
from effnet.registry import get_arch
from effnet.study import Study
from effnet.train.recipe import Recipe

SETTINGS = settings(
    max_examples=int(os.environ.get("EFFNET_PROPERTY_EXAMPLES", 100)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=12,
)  # fmt: skip


def fields_of(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def records(cls: type, base: dict) -> st.SearchStrategy:
    """A valid record's dict with some fields replaced by random JSON (sometimes a typo'd
    key), or random JSON altogether."""
    changed = st.dictionaries(st.sampled_from(fields_of(cls) + ["bogus"]), json_values,
                              max_size=3)  # fmt: skip
    return changed.map(lambda c: {**base, **c}) | json_values


def only_one_line_errors(load, data) -> None:
    try:
        load(data)
    except EffnetError as e:
        assert str(e) and "\n" not in str(e)


ARCH = json.loads(get_arch("efficientnet_b0").to_json())
STAGE_KEYS = ["block", "kernel", "stride", "out_channels", "layers", "expand", "se", "skip"]


@SETTINGS
@given(records(Architecture, ARCH))
def test_architecture_loader(data):
    only_one_line_errors(Architecture.from_dict, data)


@SETTINGS
@given(st.integers(0, 6), st.sampled_from(STAGE_KEYS), json_values)
def test_architecture_stage_fields(stage, key, value):
    data = json.loads(json.dumps(ARCH))
    data["stages"][stage][key] = value
    only_one_line_errors(Architecture.from_dict, data)


@SETTINGS
@given(records(Recipe, Recipe().to_dict()))
def test_recipe_loader(data):
    only_one_line_errors(Recipe.from_dict, data)


STUDY = {"name": "s", "data": {"subset": 100}, "budget": None, "sweeps": {"width": [1.0]}}


@SETTINGS
@given(records(Study, STUDY))
def test_study_loader(data):
    only_one_line_errors(Study.from_dict, data)


@SETTINGS
@given(st.sampled_from(["data", "recipe_overrides"]), records(DataSpec, {}))
def test_study_nested_objects(key, value):
    only_one_line_errors(Study.from_dict, {**STUDY, key: value})


@SETTINGS
@given(st.text(max_size=40) | st.binary(max_size=40).map(lambda b: b.decode("latin-1")))
def test_malformed_json_text(text):
    for cls in (Architecture, Recipe, Study):
        only_one_line_errors(cls.from_json, text)
