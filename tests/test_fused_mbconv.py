"""Fused-MBConv (EfficientNetV2) as one block class, and timm's efficientnetv2_rw_t from data.

The parameter count is timm 1.0.31's for ``timm.create_model("efficientnetv2_rw_t")``; its
state dict loads into ours key for key with identical logits (docs/families.md).
"""

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from effnet import Architecture, Block, EffnetError, Stage, create_model, get_arch
from effnet.arch import Norm, Padding, render_table
from effnet.blocks import ConvBnAct, FusedMBConv, MBConv, make_block
from effnet.export import fold_bn

pytestmark = pytest.mark.usefixtures("one_thread")

NAME = "efficientnetv2_rw_t"
TIMM_PARAMS = 13_649_388  # timm 1.0.31, efficientnetv2_rw_t


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    return create_model(NAME, num_classes=10)


def randomise_bn(net: nn.Module) -> nn.Module:
    """Random BN statistics, scales and shifts, so that folding them is not the identity.

    Each residual branch's last BN scale is ~0.1, as in trained networks: at full scale
    the randomly initialised 39-block residual stream grows until eval-mode logits reach
    ~1e4 and float32 rounding alone moves them by more than the tolerance.
    """
    g = torch.Generator().manual_seed(0)
    last = {id(m.bn2) for m in net.modules() if isinstance(m, FusedMBConv)}
    last |= {id(m.bn3) for m in net.modules() if isinstance(m, MBConv)}
    last |= {id(m.bn1) for m in net.modules() if isinstance(m, ConvBnAct) and m.has_skip}
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.5)
                m.weight.copy_((torch.rand(n, generator=g) + 0.5) * (0.1 if id(m) in last else 1))
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
    return net.eval()


def test_parameter_count_is_timms():
    with torch.device("meta"):
        net = create_model(NAME)
    assert sum(p.numel() for p in net.parameters()) == TIMM_PARAMS


def test_layer_names_are_timms():
    """EdgeResidual's names for Fused-MBConv4; ConvBnAct's (timm's ``cn``) for Fused-MBConv1."""
    with torch.device("meta"):
        net = create_model(NAME)
    keys = set(net.state_dict())
    assert "blocks.0.0.conv.weight" in keys and "blocks.0.1.bn1.running_var" in keys
    for k in ("conv_exp.weight", "bn1.weight", "conv_pwl.weight", "bn2.running_mean"):
        assert f"blocks.1.0.{k}" in keys and f"blocks.2.3.{k}" in keys
    assert [type(b) for b in net.blocks[0]] == [ConvBnAct] * 2
    assert {type(b) for s in net.blocks[1:3] for b in s} == {FusedMBConv}


def test_forward_and_backward_at_64_px(model):
    model.train()
    x = torch.randn(2, 3, 64, 64)
    out = model(x)
    assert out.shape == (2, 10)
    out.logsumexp(1).sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    model.zero_grad(set_to_none=True)


def test_table_1_shows_the_fused_stages():
    table = render_table(get_arch(NAME))
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in table.splitlines()[2:]]
    assert [r[1] for r in rows[1:4]] == ["Fused-MBConv1, k3x3"] + ["Fused-MBConv4, k3x3"] * 2
    assert [(r[3], r[4]) for r in rows[1:4]] == [("24", "2"), ("40", "4"), ("48", "4")]
    assert rows[4][1] == "MBConv4, k3x3" and rows[-1][3] == "1024"


def test_fold_bn_removes_every_batch_norm_and_keeps_outputs(model):
    randomise_bn(model)
    folded = fold_bn(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want, got = model(x), folded(x)
    assert want.abs().max().item() > 0.5
    assert (want - got).abs().max().item() < 1e-4  # float32 rounding (measured 1.1e-6)


def test_json_round_trip():
    arch = get_arch(NAME)
    text = arch.to_json()
    assert json.loads(text)["stages"][1]["block"] == "fused_mbconv"
    back = Architecture.from_json(text)
    assert back == arch and back.to_json() == text


def _block(cin: int, cout: int, stride: int, expand: float, se: float = 0.0) -> nn.Module:
    arch = get_arch(NAME)
    s = Stage(Block.FUSED_MBCONV, kernel=3, stride=stride, out_channels=cout, layers=1,
              expand=expand, se=se)  # fmt: skip
    return make_block(arch, s, cin, stride, 0.0)


def test_block_matches_the_papers_definition_written_out():
    """conv_exp kxk + BN + SiLU, SE, 1x1 + BN, identity residual: computed with F directly."""
    torch.manual_seed(0)
    block = _block(16, 16, 1, expand=4, se=0.25).eval()
    assert block.se.conv_reduce.out_channels == 4  # SE: a quarter of the *input* channels
    x = torch.randn(2, 16, 9, 9)

    def bn(y: torch.Tensor, m: nn.BatchNorm2d) -> torch.Tensor:
        return F.batch_norm(y, m.running_mean, m.running_var, m.weight, m.bias, eps=m.eps)

    with torch.no_grad():
        for m in block.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.weight.uniform_(0.5, 1.5)
        y = F.silu(bn(F.conv2d(x, block.conv_exp.weight, padding=1), block.bn1))
        se = block.se
        s = F.silu(se.conv_reduce(y.mean((2, 3), keepdim=True)))
        y = y * se.conv_expand(s).sigmoid()
        want = bn(F.conv2d(y, block.conv_pwl.weight), block.bn2) + x
        assert torch.allclose(block(x), want, atol=1e-5)


def test_stride_or_new_width_has_no_residual_and_zero_init_makes_identity():
    assert not _block(16, 16, 2, expand=4).has_skip
    assert not _block(16, 24, 1, expand=4).has_skip
    for block in (_block(16, 16, 1, expand=4), _block(16, 16, 1, expand=1)):
        block.zero_init_last()
        block.eval()
        x = torch.randn(1, 16, 5, 5)
        with torch.no_grad():
            assert torch.equal(block(x), x)


def test_fused_mbconv1_is_one_conv_and_refuses_se():
    block = _block(16, 16, 1, expand=1)
    assert isinstance(block, ConvBnAct) and block.conv.kernel_size == (3, 3)
    with pytest.raises(EffnetError, match="Fused-MBConv1"):
        _block(16, 16, 1, expand=1, se=0.25)


def test_same_padding_and_tf_norm_build_too():
    arch = get_arch(NAME).replace(padding=Padding.SAME, norm=Norm())
    s = arch.stages[1]
    block = make_block(arch, s, 24, 2, 0.0)
    assert block(torch.randn(1, 24, 7, 7)).shape == (1, 40, 4, 4)
