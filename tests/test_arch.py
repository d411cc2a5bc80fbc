"""Architectures as data: Table 1, JSON, validation."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from effnet import Architecture, EffnetError, get_arch, scale
from effnet.arch import render_table, table_rows

# Table 1 of Tan & Le 2019, row for row: stage, operator, input resolution, channels, layers
TABLE_1 = [
    ("1", "Conv3x3 (stride 2)", "224x224", "32", "1"),
    ("2", "MBConv1, k3x3", "112x112", "16", "1"),
    ("3", "MBConv6, k3x3", "112x112", "24", "2"),
    ("4", "MBConv6, k5x5", "56x56", "40", "2"),
    ("5", "MBConv6, k3x3", "28x28", "80", "3"),
    ("6", "MBConv6, k5x5", "14x14", "112", "3"),
    ("7", "MBConv6, k5x5", "14x14", "192", "4"),
    ("8", "MBConv6, k3x3", "7x7", "320", "1"),
    ("9", "Conv1x1 & Pooling & FC", "7x7", "1280", "1"),
]


def test_b0_reproduces_table_1():
    assert table_rows(get_arch("efficientnet_b0")) == TABLE_1


def test_b0_blocks_follow_the_paper():
    b0 = get_arch("efficientnet_b0")
    assert [s.stride for s in b0.stages] == [1, 2, 2, 2, 1, 2, 1]
    assert all(s.se == 0.25 for s in b0.stages)
    assert [s.expand for s in b0.stages] == [1, 6, 6, 6, 6, 6, 6]
    assert b0.activation == "silu" and b0.norm.eps == 1e-3 and b0.norm.momentum == 0.01


def test_table_renders_scaled_networks():
    text = render_table(get_arch("efficientnet_b7"))
    assert "| 9     | Conv1x1 & Pooling & FC | 19x19" in text
    assert "600x600" in text and "2560" in text  # B7 head: round_filters(1280, 2.0)


multipliers = st.floats(min_value=0.2, max_value=4.0, allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(d=multipliers, w=multipliers, r=st.floats(min_value=0.5, max_value=3.0))
def test_json_round_trip_is_exact(d, w, r):
    arch = scale(get_arch("efficientnet_b0"), depth=d, width=w, resolution_mult=r)
    text = arch.to_json()
    back = Architecture.from_json(text)
    assert back == arch
    assert back.to_json() == text


def test_save_and_load(tmp_path):
    arch = get_arch("efficientnet_b3")
    path = arch.save(tmp_path / "b3.json")
    assert Architecture.load(path) == arch
    assert get_arch(str(path)) == arch


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["stages"][2].update(block="wavelet"), "stage 3: unknown block type 'wavelet'"),
        (lambda d: d["stages"][1].update(layers=0), "stage 2: layers must be >= 1"),
        (lambda d: d["stages"][0].update(kernel=4), "stage 1: kernel must be a positive odd"),
        (lambda d: d["stages"][0].update(colour="red"), "stage 1: unknown field(s) colour"),
        (lambda d: d.update(resolution=8), "stage 4: stride 2 makes the feature map vanish"),
        (lambda d: d.update(activation="gelu2"), "unknown activation 'gelu2'"),
        (lambda d: d.pop("stages"), "'name' and 'stages' are required"),
    ],
)
def test_bad_architecture_files_name_the_problem(mutate, message):
    data = json.loads(get_arch("efficientnet_b0").to_json())
    mutate(data)
    with pytest.raises(EffnetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Architecture.from_dict(data)


def test_malformed_json():
    with pytest.raises(EffnetError, match="malformed"):
        Architecture.from_json("{not json")


def test_unknown_model_lists_known_ones():
    with pytest.raises(EffnetError, match="unknown model 'efficientnet_b9'.*efficientnet_b0"):
        get_arch("efficientnet_b9")
