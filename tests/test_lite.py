"""EfficientNet-Lite0..4 as architecture data.

Oracles: timm 1.0.31's ``tf_efficientnet_lite0..4`` parameter counts (the official
TensorFlow checkpoints' ports), the official ``efficientnet_lite_builder.py`` table, and
the rules it states (ReLU6, no SE, stem and head fixed, first and last stage not repeated
more). Logits against timm and efficientnet_pytorch are checked in the reference
environment (docs/weights.md).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from effnet import Padding, create_model, get_arch, list_models, scale
from effnet.arch import Architecture, render_table
from effnet.families import efficientnet, lite
from effnet.profile import params_and_macs
from effnet.weights.safe import read_safetensors

LITES = [f"efficientnet_lite{i}" for i in range(5)]
TIMM_PARAMS = {  # timm tf_efficientnet_lite0..4, 1000 classes
    "efficientnet_lite0": 4_652_008,
    "efficientnet_lite1": 5_416_680,
    "efficientnet_lite2": 6_092_072,
    "efficientnet_lite3": 8_197_096,
    "efficientnet_lite4": 13_006_568,
}
# official efficientnet_lite_builder.py: (width, depth, resolution, dropout)
OFFICIAL = {
    "efficientnet_lite0": (1.0, 1.0, 224, 0.2),
    "efficientnet_lite1": (1.0, 1.1, 240, 0.2),
    "efficientnet_lite2": (1.1, 1.2, 260, 0.3),
    "efficientnet_lite3": (1.2, 1.4, 280, 0.3),
    "efficientnet_lite4": (1.4, 1.8, 300, 0.3),
}

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", LITES)
def test_parameter_counts_equal_timm(name):
    for variant in (name, f"tf_{name}"):
        with torch.device("meta"):
            model = create_model(variant)
        assert sum(p.numel() for p in model.parameters()) == TIMM_PARAMS[name]


@pytest.mark.parametrize("name", LITES)
def test_conventions_are_in_the_data(name):
    arch = get_arch(name)
    width, depth, res, dropout = OFFICIAL[name]
    assert (arch.width, arch.depth, arch.resolution, arch.dropout) == (width, depth, res, dropout)
    assert arch.activation == "relu6" and all(s.se == 0 for s in arch.stages)
    assert (arch.stem.out_channels, arch.head.out_channels) == (32, 1280)
    assert (arch.stages[0].layers, arch.stages[-1].layers) == (1, 1)
    assert arch.mean == arch.std == (0.5, 0.5, 0.5) and arch.interpolation == "bicubic"
    assert arch.crop_pct == round(res / (res + 32), 4)
    assert (arch.norm.eps, arch.norm.momentum, arch.padding) == (1e-3, 0.01, Padding.SYMMETRIC)
    tf = get_arch(f"tf_{name}")
    assert tf.padding is Padding.SAME and tf.replace(name=name, padding=Padding.SYMMETRIC) == arch
    assert Architecture.from_json(arch.to_json()) == arch


def test_lite0_is_b0_without_se_with_relu6():
    b0, lite0 = efficientnet.B0, lite.LITE0
    assert [(s.kernel, s.stride, s.out_channels, s.layers, s.expand) for s in lite0.stages] == [
        (s.kernel, s.stride, s.out_channels, s.layers, s.expand) for s in b0.stages
    ]
    assert lite0.crop_pct == 0.875
    assert "MBConv6, k5x5, no SE" in render_table(lite0)
    params, macs = params_and_macs(lite0)
    assert params == 4_652_008 and params < params_and_macs(b0)[0]


def test_scaling_keeps_stem_head_and_end_stages():
    """The Lite rules hold for any multipliers, by the data alone."""
    big = scale(lite.LITE0, depth=3.0, width=2.0)
    assert (big.stem.out_channels, big.head.out_channels) == (32, 1280)
    assert [s.layers for s in big.stages] == [1, 6, 6, 9, 9, 12, 1]
    assert [s.out_channels for s in big.stages] == [32, 48, 80, 160, 224, 384, 640]
    b0_big = scale(efficientnet.B0, depth=3.0, width=2.0)
    assert (b0_big.stem.out_channels, b0_big.head.out_channels) == (64, 2560)
    assert [s.layers for s in b0_big.stages][0::6] == [3, 3]


def test_registered_and_builds_forward_backward():
    assert set(LITES) | {f"tf_{n}" for n in LITES} <= set(list_models())
    torch.manual_seed(0)
    model = create_model("tf_efficientnet_lite1", num_classes=3).train()
    assert not any(".se." in k for k in model.state_dict())
    assert isinstance(model.act1, torch.nn.ReLU6)
    loss = torch.nn.functional.cross_entropy(model(torch.randn(2, 3, 33, 33)), torch.tensor([0, 2]))
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters())


# -- against timm itself (reference environment only) -----------------------------------------
REFERENCE = Path(os.environ.get("EFFNET_REFERENCE_ENV", "/opt/effnet-reference"))
TOOL = Path(__file__).resolve().parents[1] / "tools" / "make_weight_fixtures.py"
TIMM_LITES = [f"timm/tf_{n}" for n in LITES] + ["timm/efficientnet_lite0"]


@pytest.mark.reference
@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("spec", TIMM_LITES)
def test_logits_equal_timm_for_the_same_weights(request, tmp_path, spec):
    """timm's Lite state dict, random with randomised batch-norm statistics, 64x64 input."""
    if "reference" not in (request.config.option.markexpr or ""):
        pytest.skip("minutes: run with -m reference")
    if not (REFERENCE / "bin" / "python").exists():
        pytest.skip("no reference environment")
    cmd = [str(REFERENCE / "bin" / "python"), str(TOOL), "full", str(tmp_path), "64", spec]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    name = spec.split("/")[1]
    model = create_model(name, pretrained=tmp_path / f"timm_{name}.safetensors").eval()
    io, _ = read_safetensors(tmp_path / f"timm_{name}.io.safetensors")
    with torch.no_grad():
        diff = (model(io["input"]) - io["output"]).abs().max().item()
    print(f"{spec}: max abs difference {diff:.3g}", file=sys.stderr)
    assert diff < 1e-4
