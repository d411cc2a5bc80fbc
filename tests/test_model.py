"""Models built from descriptions: every named model runs; blocks behave as published."""

import pytest
import torch
import torch.nn.functional as F

from effnet import EffnetError, create_model, get_arch, list_models
from effnet.blocks import MBConv
from effnet.layers import Conv2dSame, DropPath
from effnet.model import build
from effnet.profile import activation_bytes

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {f"efficientnet_{v}": 32 for v in ("b5", "b6", "b7", "b8", "l2")}
HUGE = {"efficientnet_b8", "efficientnet_l2", "efficientnetv2_m", "efficientnetv2_l"}  # 54M-480M
# parameters: seconds to initialise


# tf_efficientnet_* are the efficientnet_* architectures with "same" padding: one suffices
FAST = {"efficientnet_b0", "efficientnet_lite0", "mobilenet_v1", "mobilenet_v2"}


@pytest.mark.parametrize(
    "name",
    [
        n if n in FAST else pytest.param(n, marks=pytest.mark.slow)
        for n in [n for n in list_models() if not n.startswith("tf_")] + ["tf_efficientnet_b0"]
    ],
)
def test_every_named_model_runs_forward_and_backward(name):
    torch.manual_seed(0)
    res = TINY.get(name, 64)
    if name in HUGE:
        # the real network's shapes on the meta device (no memory, no arithmetic), then real
        # numbers through the same depth and topology at a quarter of its width
        with torch.device("meta"):
            meta = create_model(name, num_classes=7)
            assert meta(torch.randn(2, 3, res, res)).shape == (2, 7)
        model = create_model(name, num_classes=7, width=0.25)
    else:
        model = create_model(name, num_classes=7)
    x = torch.randn(2, 3, res, res)
    y = model(x)
    assert y.shape == (2, 7) and torch.isfinite(y).all()
    y.logsumexp(1).sum().backward()
    assert model.conv_stem.weight.grad is not None
    assert torch.isfinite(model.conv_stem.weight.grad).all()


def test_grayscale_and_feature_pyramid():
    model = create_model("efficientnet_b0", in_chans=1, features_only=True).eval()
    feats = model(torch.randn(1, 1, 224, 224))
    assert [f.shape[1] for f in feats] == [16, 24, 40, 112, 320]  # timm's feature_info
    assert [f.shape[-1] for f in feats] == [112, 56, 28, 14, 7]  # strides 2..32
    assert [i["reduction"] for i in model.feature_info] == [2, 4, 8, 16, 32]


def test_forward_features_and_head_compose():
    model = create_model("efficientnet_b0", num_classes=10, width=0.5, depth=0.5).eval()
    x = torch.randn(2, 3, 64, 64)
    feats = model.forward_features(x)
    assert feats.shape == (2, model.num_features, 2, 2)
    assert torch.allclose(model.forward_head(feats), model(x))
    assert model.forward_head(feats, pre_logits=True).shape == (2, model.num_features)


def test_stochastic_depth_rate_grows_linearly_over_blocks():
    model = create_model("efficientnet_b0")
    blocks = [b for stage in model.blocks for b in stage]
    rates = [b.drop_path.rate if isinstance(b.drop_path, DropPath) else None for b in blocks]
    n = len(blocks)
    for i, (b, rate) in enumerate(zip(blocks, rates)):
        if b.has_skip and i > 0:
            assert rate == pytest.approx(0.2 * i / n)
        else:
            assert rate is None  # no residual (or rate 0): nothing to drop


def test_drop_path_drops_whole_samples_and_rescales():
    torch.manual_seed(0)
    dp = DropPath(0.25).train()
    x = torch.ones(4000, 3, 2, 2)
    y = dp(x)
    per_sample = y.flatten(1)
    assert ((per_sample == 0).all(1) | (per_sample == 1 / 0.75).all(1)).all()
    assert (per_sample[:, 0] == 0).float().mean().item() == pytest.approx(0.25, abs=0.03)
    assert torch.equal(dp.eval()(x), x)


def test_mbconv_residual_rules():
    from effnet.arch import Norm, Padding

    def make(cin, cout, stride):
        return MBConv(cin, cout, 3, stride, 6, 0.25, True, "silu", Norm(), Padding.SYMMETRIC, 0)

    assert make(16, 16, 1).has_skip
    assert not make(16, 16, 2).has_skip and not make(16, 24, 1).has_skip
    m = MBConv(16, 16, 3, 1, 1, 0.25, True, "silu", Norm(), Padding.SYMMETRIC, 0)
    assert m.conv_pw is None  # MBConv1 has no expansion conv
    assert m.se.conv_reduce.out_channels == 4  # 0.25 of the block's input channels


@pytest.mark.parametrize("size", [223, 224, 225])
def test_same_padding_matches_tensorflow(size):
    """TF 'SAME' with stride 2: output ceil(n/2); odd padding goes bottom/right."""
    torch.manual_seed(0)
    conv = Conv2dSame(3, 4, 3, 2, 0, bias=False)
    x = torch.randn(1, 3, size, size)
    total = max((-(-size // 2) - 1) * 2 + 3 - size, 0)
    ref = F.conv2d(F.pad(x, [total // 2, total - total // 2] * 2), conv.weight, stride=2)
    out = conv(x)
    assert out.shape[-1] == -(-size // 2)
    assert torch.allclose(out, ref)


def test_same_padding_model_runs_at_other_resolutions():
    model = create_model("efficientnet_b0", padding="same", width=0.25, depth=0.3).eval()
    for res in (33, 64, 97):
        assert model(torch.randn(1, 3, res, res)).shape == (1, 1000)


def test_gradient_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    a = create_model(
        "efficientnet_b0", num_classes=3, width=0.25, depth=0.3, drop_path=0.0, dropout=0.0
    )
    b = create_model(
        "efficientnet_b0", num_classes=3, width=0.25, depth=0.3, drop_path=0.0, dropout=0.0
    )
    b.load_state_dict(a.state_dict())
    b.set_grad_checkpointing()
    x = torch.randn(4, 3, 32, 32)
    for m in (a, b):
        m.train()(x).square().sum().backward()
    ga, gb = a.conv_stem.weight.grad, b.conv_stem.weight.grad
    assert torch.allclose(ga, gb, atol=1e-5)


def test_reset_classifier_and_freeze():
    model = create_model("efficientnet_b0", width=0.25, depth=0.3)
    model.reset_classifier(5)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    model.freeze(3)
    frozen = [p.requires_grad for p in model.blocks[2].parameters()]
    assert not any(frozen) and all(p.requires_grad for p in model.blocks[3].parameters())
    model.train()
    assert not model.bn1.training and model.blocks[3].training
    with pytest.raises(EffnetError, match="can freeze 0..7 stages"):
        model.freeze(9)


def test_activation_memory_grows_with_resolution_squared():
    with torch.device("meta"):
        model = build(get_arch("efficientnet_b0"))
    a224, a448 = activation_bytes(model, 224), activation_bytes(model, 448)
    assert a224 > 50 * 2**20  # tens of MiB per image at 224: activations, not params
    assert 3.6 < a448 / a224 <= 4.0


def test_unknown_option_is_an_error():
    with pytest.raises(EffnetError, match="unknown model option"):
        create_model("efficientnet_b0", colour="red")


@pytest.mark.parametrize("name", ["efficientnet_b0", "resnet50"])
def test_zero_init_last_makes_residual_blocks_identities(name):
    """After zero_init_last, every identity-shortcut block returns its input (eval BN)."""
    torch.manual_seed(0)
    net = create_model(name, width=0.25, depth=0.5, num_classes=10).eval()
    blocks = [m for m in net.modules() if hasattr(m, "zero_init_last")]
    for m in blocks:
        m.zero_init_last()
    if name == "resnet50":
        identity = [(m, m.conv1.in_channels) for m in blocks if m.downsample is None]
    else:
        identity = [(m, (m.conv_pw or m.conv_dw).in_channels) for m in blocks if m.has_skip]
    assert len(identity) >= 3
    for m, cin in identity:
        x = torch.rand(2, cin, 8, 8)  # >= 0: ResNet's closing ReLU leaves it unchanged
        assert torch.equal(m(x), x)


def test_resolution_is_pixels_and_a_multiplier_is_named_so():
    """The paper's r = 2 given as pixels is refused with the name that means a multiplier."""
    with pytest.raises(EffnetError, match="in pixels, got 2.0; .* use resolution_mult=2.0"):
        create_model("resnet50", resolution=2.0)
    with pytest.raises(EffnetError, match="in pixels, got 448.0"):
        get_arch("resnet50", resolution=448.0)
    assert get_arch("resnet50", resolution_mult=2.0).resolution == 448
    assert get_arch("resnet50", resolution=448).resolution == 448


def test_every_block_type_is_registered_once_with_all_it_declares():
    """A new Block value without its class, label or conv-BN pairs fails here, not silently."""
    from effnet.arch import Block, Stage
    from effnet.blocks import BLOCKS

    assert set(BLOCKS) == set(Block)
    for block, cls in BLOCKS.items():
        assert cls.block is block and cls.conv_bn_pairs
        stage = Stage(block, kernel=3, stride=1, expand=4, out_channels=16, layers=1)
        assert block.operator(stage)  # a label of its own, never the raw enum value
