"""The small-map convolution paths (effnet.convs) against PyTorch's own convolution."""

import pytest
import torch
import torch.nn.functional as F

from effnet import convs
from effnet.hub import create_model
from effnet.layers import Conv2dSame, DepthwiseConv2d, PointwiseConv2d

CASES = [  # (size, kernel, stride, padding): the maps B0 meets at 32-64 px, and odd ones
    (1, 5, 1, 2),
    (1, 3, 1, 1),
    (2, 5, 1, 2),
    (2, 5, 2, 2),
    (2, 3, 1, 1),
    (3, 3, 2, 1),
    (4, 5, 1, 2),
    (4, 3, 2, 1),
    (3, 3, 2, 0),
    (4, 3, 1, 0),
]


@pytest.mark.parametrize("size,kernel,stride,padding", CASES)
def test_gradcheck_float64(size, kernel, stride, padding):
    torch.manual_seed(0)
    x = torch.randn(2, 3, size, size + (size > 1), dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 1, kernel, kernel, dtype=torch.float64, requires_grad=True)
    fn = lambda x, w: convs.SmallMapDepthwise.apply(x, w, (stride, stride), (padding, padding))  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("size,kernel,stride,padding", CASES)
def test_weight_grad_equals_pytorch_channels_last(size, kernel, stride, padding):
    torch.manual_seed(1)
    x = torch.randn(8, 16, size, size).contiguous(memory_format=torch.channels_last)
    w = torch.randn(16, 1, kernel, kernel)
    y = F.conv2d(x, w, None, stride, padding, 1, 16)
    g = torch.randn_like(y)
    ref = torch.ops.aten.convolution_backward(
        g, x, w, None, [stride] * 2, [padding] * 2, [1, 1], False, [0, 0], 16, [False, True, False]
    )[1]
    ours = convs.weight_grad(x, g, (kernel, kernel), (stride, stride), (padding, padding))
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_tap_path_only_where_it_pays():
    w = torch.randn(8, 1, 3, 3, requires_grad=True)
    small = torch.randn(2, 8, 4, 4)
    assert convs.takes_tap_path(small, w, 8, (1, 1))
    assert not convs.takes_tap_path(torch.randn(2, 8, 8, 8), w, 8, (1, 1))  # 64 px: oneDNN
    assert not convs.takes_tap_path(small, w.detach(), 8, (1, 1))  # frozen weight
    assert not convs.takes_tap_path(torch.randn(2, 16, 4, 4), torch.randn(16, 2, 3, 3), 8, (1, 1))
    with torch.no_grad():
        assert not convs.takes_tap_path(small, w, 8, (1, 1))


def test_modules_keep_conv2d_parameters_and_outputs():
    torch.manual_seed(2)
    x = torch.randn(4, 8, 2, 2).contiguous(memory_format=torch.channels_last)
    dw = DepthwiseConv2d(8, 8, 5, 1, 2, groups=8, bias=False)
    same = Conv2dSame(8, 8, 5, 2, 0, groups=8, bias=False)
    pw = PointwiseConv2d(8, 12, 1, bias=True)
    for m in (dw, same, pw):
        assert isinstance(m, torch.nn.Conv2d) and set(m.state_dict()) <= {"weight", "bias"}
    torch.testing.assert_close(dw(x), F.conv2d(x, dw.weight, None, 1, 2, 1, 8))
    torch.testing.assert_close(pw(x), F.conv2d(x, pw.weight, pw.bias), rtol=1e-5, atol=1e-6)
    assert pw(x).is_contiguous(memory_format=torch.channels_last)


def _grads(model, x, y):
    torch.manual_seed(4)  # the same dropout mask
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    return {k: p.grad.clone() for k, p in model.named_parameters()}


def test_b0_gradients_equal_the_onednn_path(monkeypatch):
    """A whole network at 32 px: every parameter's gradient as with plain F.conv2d."""
    torch.manual_seed(3)
    model = create_model("efficientnet_b0", width=0.25, depth=0.25, num_classes=10, drop_path=0.0)
    model = model.to(memory_format=torch.channels_last).train()
    x = torch.randn(6, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (6,))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    fast = _grads(model, x, y)
    model.load_state_dict(state)  # BN running stats as before
    monkeypatch.setattr(convs, "SMALL_MAP", 0)
    monkeypatch.setattr(convs, "MATMUL_MAP", 0)
    plain = _grads(model, x, y)
    assert fast.keys() == plain.keys()
    overall = max(g.abs().max().item() for g in plain.values())
    for k in fast:  # float32 sums in another order: relative to the tensor and to all grads
        scale = plain[k].abs().max().item()
        err = (fast[k] - plain[k]).abs().max().item()
        assert err <= 1e-4 * scale + 1e-5 * overall, (k, err, scale, overall)


def test_tracing_for_export_sees_plain_convolutions():
    """ONNX export traces the model: every conv stays a convolution (ONNX Conv), not a
    matrix product, even on the 1x1 maps where eager mode uses one."""
    model = create_model("efficientnet_b0", width=0.25, depth=0.25, num_classes=10).eval()
    model = model.to(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    graph = str(torch.jit.trace(model, x).inlined_graph)
    convs_in_model = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert graph.count("aten::_convolution") == convs_in_model
    assert graph.count("aten::linear") == 1  # the classifier only
