"""MobileNetV1/V2, ResNet-50 and user-defined baselines under the one scaling mechanism.

Oracles: the published figures (MobileNet papers, He et al., Tan & Le Table 3), and
torchvision 0.28 / timm 1.0.31 (parameter counts, every tensor's shape, and logits for the
same weights), recorded in tests/fixtures/families/reference.json by
tools/make_family_fixtures.py in the reference environment.
"""

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from effnet import EffnetError, create_model, get_arch, list_models, paper, round_filters, scale
from effnet.arch import Architecture
from effnet.cli import main
from effnet.families import mobilenet, resnet
from effnet.model import build
from effnet.profile import macs_of, params_and_macs
from effnet.scaling import fit, scale_phi

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = json.loads((ROOT / "tests/fixtures/families/reference.json").read_text())
CUSTOM = ROOT / "examples/custom.json"
FAMILIES = ["mobilenet_v1", "mobilenet_v2", "resnet50"]
PUBLISHED = paper.BASELINES
TABLE3 = paper.TABLE3
COMPOUND_PHI = {**mobilenet.COMPOUND_PHI, **resnet.COMPOUND_PHI}
TORCHVISION_PARAMS = {"resnet50": 25_557_032, "mobilenet_v2": 3_504_872}

# Table 3 rows no natural reading reproduces within 10% (see docs/families.md): ResNet-50
# d=4 repeats every stage 4x ([12, 16, 24, 12] blocks), 14.57B vs the paper's 16.2B; the
# paper's figure is ~4x the baseline, which no layer count can give since the stem and the
# stride-2 transition blocks do not repeat.
DOCUMENTED_MISS = {("resnet50", "d=4"): 0.101}


def _tools():
    spec = importlib.util.spec_from_file_location(
        "make_family_fixtures", ROOT / "tools/make_family_fixtures.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- published figures and independent implementations ------------------------------------
@pytest.mark.parametrize("name", FAMILIES)
def test_params_and_macs_match_published(name):
    params, macs = params_and_macs(get_arch(name))
    paper_params_m, paper_macs_b = PUBLISHED[name]
    assert params / 1e6 == pytest.approx(paper_params_m, rel=0.02)
    assert macs / 1e9 == pytest.approx(paper_macs_b, rel=0.02)
    assert params == FIXTURE["models"][name]["params"]
    if name in TORCHVISION_PARAMS:
        assert params == TORCHVISION_PARAMS[name]


@pytest.mark.parametrize("name", FAMILIES)
def test_every_tensor_has_the_reference_shape(name):
    with torch.device("meta"):
        sd = create_model(name).state_dict()
    layers = FIXTURE["models"][name]["layers"]
    assert list(sd) == [ours for ours, _, _ in layers]
    assert [list(t.shape) for t in sd.values()] == [shape for _, _, shape in layers]


@pytest.mark.parametrize("name", FAMILIES)
def test_same_logits_as_reference_for_same_weights(name):
    tools = _tools()
    ref = FIXTURE["models"][name]
    spec = FIXTURE["input"]
    model = create_model(name, num_classes=spec["num_classes"])
    model = tools.fill_deterministic(model).double().eval()
    with torch.no_grad():
        out = model(tools.sample_input())
    expected = torch.tensor(ref["logits"], dtype=torch.float64)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-9 * expected.abs().max())
    assert (expected[0] - expected[1]).abs().max() > 1e-3  # the logits depend on the input


@pytest.mark.parametrize("key", sorted(FIXTURE["scaled_params"]))
def test_width_reading_matches_reference_width_multipliers(key):
    """torchvision's width_mult (MobileNetV2) and timm's mobilenetv1_125 equal scale(width=w)."""
    name, width = key.split(" width=")
    with torch.device("meta"):
        model = build(get_arch(name, width=float(width)))
    assert sum(p.numel() for p in model.parameters()) == FIXTURE["scaled_params"][key]


@pytest.mark.reference
@pytest.mark.parametrize("name", FAMILIES)
def test_live_reference_comparison(name):
    pytest.importorskip("torchvision")
    pytest.importorskip("timm")
    result = _tools().compare(name)
    assert result["params"] == FIXTURE["models"][name]["params"]
    assert result["max_abs_diff"] <= 1e-9 * max(1.0, abs(max(map(max, result["logits"]))))


# -- Table 3 by the one scaling mechanism ---------------------------------------------------
TABLE3_ROWS = [
    (name, row)
    for name, rows in TABLE3.items()
    for row, (d, _w, _r, _macs, _top1) in rows.items()
    if d is not None
]


@pytest.mark.parametrize(("name", "row"), TABLE3_ROWS, ids=[f"{n}-{r}" for n, r in TABLE3_ROWS])
def test_table3_rows_by_scale(name, row):
    d, w, r, paper_macs_b, _ = TABLE3[name][row]
    macs = macs_of(scale(get_arch(name), depth=d, width=w, resolution_mult=r))
    tolerance = DOCUMENTED_MISS.get((name, row), 0.10)
    assert abs(macs / 1e9 - paper_macs_b) / paper_macs_b <= tolerance


def test_resnet_depth4_documented_figure():
    arch = scale(get_arch("resnet50"), depth=4)
    assert [s.layers for s in arch.stages] == [12, 16, 24, 12]
    assert macs_of(arch) / 1e9 == pytest.approx(14.57, abs=0.01)


@pytest.mark.parametrize(("name", "target"), [("mobilenet_v2", 1.3e9), ("resnet50", 16.7e9)])
def test_compound_phi_matches_table3(name, target):
    """The documented phi (alpha 1.2, beta 1.1, gamma 1.15) is what budget matching finds."""
    base = get_arch(name)
    found = fit(lambda p: scale_phi(base, p), macs_of, target, 1.5, 2.5, mode="nearest")
    assert abs(found.relative_error) < 0.02
    assert found.value == pytest.approx(COMPOUND_PHI[name], abs=0.05)
    documented = scale_phi(base, COMPOUND_PHI[name])
    assert (documented.stages, documented.resolution) == (found.arch.stages, found.arch.resolution)
    assert macs_of(documented) == found.cost


# -- one mechanism: what width and depth mean is data ---------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(FAMILIES),
    d=st.floats(0.3, 5.0),
    w=st.floats(0.25, 4.0),
    r=st.floats(0.2, 3.0),
)
def test_scale_follows_the_declared_data(name, d, w, r):
    base = get_arch(name)
    out = scale(base, depth=d, width=w, resolution_mult=r)
    for s0, s1 in zip(base.stages, out.stages):
        assert s1.layers == (math.ceil(s0.layers * d) if s0.scale_depth else s0.layers)
        want = round_filters(s0.out_channels, w) if s0.scale_width and w != 1 else s0.out_channels
        assert s1.out_channels == want
    assert out.stem.out_channels == round_filters(base.stem.out_channels, w) or w == 1
    head_w = max(1.0, w) if base.head.only_grow else w
    head = base.head.out_channels
    assert out.head.out_channels == (round_filters(head, head_w) if head and head_w != 1 else head)
    assert out.resolution == max(1, round(base.resolution * r))
    assert Architecture.from_json(out.to_json()) == out


def test_mobilenet_v2_head_only_grows():
    assert get_arch("mobilenet_v2", width=0.5).head.out_channels == 1280
    assert get_arch("mobilenet_v2", width=2.0).head.out_channels == 2560


def test_families_are_registered_and_have_their_conventions():
    assert set(FAMILIES) <= set(list_models())
    for name in ("mobilenet_v2", "resnet50"):
        a = get_arch(name)
        assert (a.norm.eps, a.norm.momentum, a.drop_path) == (1e-5, 0.1, 0.0)
    assert get_arch("mobilenet_v2").dropout == 0.2 and get_arch("resnet50").dropout == 0.0
    assert get_arch("mobilenet_v1").activation == "relu"
    assert get_arch("mobilenet_v2").activation == "relu6"


@pytest.mark.parametrize("name", [*FAMILIES, str(CUSTOM)])
def test_builds_forward_backward_and_json_roundtrip(name):
    arch = get_arch(name)
    assert Architecture.from_json(arch.to_json()) == arch
    scaled = get_arch(name, phi=1)
    assert Architecture.from_json(scaled.to_json()) == scaled
    torch.manual_seed(0)
    model = create_model(arch, num_classes=5).train()
    x = torch.randn(2, 3, 32, 32)
    loss = torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 3]))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters())


def test_scaled_variant_by_name_from_python_and_cli(capsys):
    model = create_model("resnet50", depth=4, num_classes=0)
    assert [len(s) for s in model.blocks] == [12, 16, 24, 12]
    assert model.arch.name == "resnet50-d4"
    assert main(["describe", "resnet50", "--depth", "4"]) == 0
    out = capsys.readouterr().out
    assert "resnet50-d4" in out and "| 12 " in out and "14.571B" in out


# -- user-defined baselines ---------------------------------------------------------------
def test_custom_file_scaled_to_phi2(capsys, tmp_path):
    """The worked example of docs/families.md (its numbers are this output)."""
    arch = scale_phi(get_arch(CUSTOM), 2)
    assert [s.layers for s in arch.stages] == [2, 3, 3, 3, 1]  # last stage: scale_depth false
    assert [s.out_channels for s in arch.stages] == [24, 32, 48, 152, 192]
    assert (arch.stem.out_channels, arch.head.out_channels, arch.resolution) == (24, 616, 169)
    assert params_and_macs(arch) == (1_181_252, 165_886_164)
    assert main(["describe", str(CUSTOM), "--phi", "2"]) == 0
    assert "custom-phi2" in capsys.readouterr().out
    saved = tmp_path / "custom-phi2.json"
    assert main(["scale", str(CUSTOM), "--phi", "2", "--save", str(saved)]) == 0
    assert "0.166B" in capsys.readouterr().out
    assert Architecture.load(saved) == arch


def _write(tmp_path, name, mutate):
    data = json.loads(CUSTOM.read_text())
    mutate(data)
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


BAD_FILES = [
    ("unknown-block", lambda d: d["stages"][2].update(block="fire"), [],
     "custom: stage 3: unknown block type 'fire'"),
    ("zero-layers", lambda d: d["stages"][1].update(layers=0), [],
     "custom: stage 2: layers must be >= 1, got 0"),
    ("vanishing-stride", lambda d: d.update(resolution=8), [],
     "custom: stage 4: stride 2 makes the feature map vanish at resolution 8"),
    ("vanishing-at-given-resolution", lambda d: None, ["--image-size", "8"],
     "custom: stage 4: stride 2 makes the feature map vanish at resolution 8"),
    ("string-layers", lambda d: d["stages"][0].update(layers="2"), [],
     "custom: stage 1: layers must be an integer, got '2'"),
    ("fractional-layers", lambda d: d["stages"][0].update(layers=1.5), [],
     "custom: stage 1: layers must be an integer, got 1.5"),
    ("unknown-field", lambda d: d["stages"][3].update(groups=2), [],
     "custom: stage 4: unknown field(s) groups"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "mutate", "extra", "message"), BAD_FILES,
                         ids=[c[0] for c in BAD_FILES])  # fmt: skip
def test_malformed_user_file_is_rejected_naming_the_stage(
    tmp_path, capsys, case, mutate, extra, message
):
    path = _write(tmp_path, f"{case}.json", mutate)
    assert main(["describe", str(path), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("effnet: error: ") and message in err
    assert "Traceback" not in err
    if not extra:
        with pytest.raises(EffnetError, match="stage"):
            create_model(path)
