"""How convolutions are computed: fast paths for the small maps of small inputs.

oneDNN's depthwise weight gradient is pathological on the small feature maps of a network
trained at small inputs: for a batch of 128 at 1x1 with 1,152 channels and a 5x5 kernel
it takes about 60 ms for 147k multiply-adds, and at 32 px input B0's last four stages run
at 1x1 to 4x4 (measured in ``benchmarks/bench_train_throughput.py``). Its forward pass and
input gradient are fast. So :class:`SmallMapDepthwise` keeps oneDNN for those and
computes the weight gradient as one product-and-sum per kernel tap over the channels-last
tensors, skipping taps that only ever see padding (on a 1x1 map a 5x5 kernel has one tap
that touches data). Same values as PyTorch's (float64 ``gradcheck`` in the tests), different
summation order.

:func:`conv2d` is what the convolution modules call: the tap path only where a weight
gradient is wanted, the map is at most ``SMALL_MAP`` pixels and nothing is being traced for
export; everywhere else it is ``F.conv2d``.

:func:`pointwise` computes a 1x1 convolution on a small channels-last map as one matrix
product over the (N*H*W, C) view (no copies): 1.2-2x faster than oneDNN's 1x1 convolution
forward and backward at 1x1 to 4x4 maps with hundreds of channels, slower on large maps.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

# input maps of at most this many pixels take the tap path: measured on this 2-core AVX2
# CPU, taps win 5-400x up to 4x4 maps and lose 2-10x from 8x8 on (oneDNN is fast there)
SMALL_MAP = 16
# 1x1 convs on maps of at most this many pixels run as one matrix product (1.2-2x faster
# than oneDNN's 1x1 conv up to 4x4, slower from 8x8 with few channels)
MATMUL_MAP = 16

Pair = tuple[int, int]


def _overlap(tap: int, pad: int, size: int, out: int, stride: int) -> tuple[slice, slice] | None:
    """(input slice, output slice) along one axis where kernel tap ``tap`` meets data, not
    padding; None when it only ever sees padding."""
    offset = tap - pad
    lo = -(offset // stride) if offset < 0 else 0  # ceil(-offset / stride)
    hi = min(out, (size - 1 - offset) // stride + 1) if offset <= size - 1 else 0
    if lo >= hi:
        return None
    first = offset + lo * stride
    return slice(first, first + (hi - lo - 1) * stride + 1, stride), slice(lo, hi)


def weight_grad(
    x: torch.Tensor, grad: torch.Tensor, kernel: Pair, stride: Pair, padding: Pair
) -> torch.Tensor:
    """d loss / d weight of a depthwise conv, shape (C, 1, kh, kw), one product-sum per tap."""
    h, w = x.shape[-2:]
    ho, wo = grad.shape[-2:]
    xs = x.permute(0, 2, 3, 1)  # NHWC views: the channel is the innermost, contiguous axis
    gs = grad.permute(0, 2, 3, 1)
    out = x.new_zeros(x.shape[1], kernel[0], kernel[1])
    rows = [_overlap(a, padding[0], h, ho, stride[0]) for a in range(kernel[0])]
    cols = [_overlap(b, padding[1], w, wo, stride[1]) for b in range(kernel[1])]
    for a, row in enumerate(rows):
        for b, col in enumerate(cols):
            if row is not None and col is not None:
                (ri, ro), (ci, co) = row, col
                out[:, a, b] = (xs[:, ri, ci] * gs[:, ro, co]).sum((0, 1, 2))
    return out.unsqueeze(1)


class SmallMapDepthwise(torch.autograd.Function):
    """Depthwise conv (groups = channels, no bias, dilation 1): oneDNN forward and input
    gradient, tap-by-tap weight gradient."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, weight: torch.Tensor, stride: Pair, padding: Pair
    ) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        return F.conv2d(x, weight, None, stride, padding, 1, weight.shape[0])

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = torch.ops.aten.convolution_backward(
                grad, x, weight, None, list(ctx.stride), list(ctx.padding), [1, 1], False,
                [0, 0], weight.shape[0], [True, False, False],
            )[0]  # fmt: skip
        if ctx.needs_input_grad[1]:
            gw = weight_grad(x, grad, tuple(weight.shape[-2:]), ctx.stride, ctx.padding)
        return gx, gw, None, None


def _eager() -> bool:
    return not torch.jit.is_tracing() and not torch.jit.is_scripting()


def takes_tap_path(x: torch.Tensor, weight: torch.Tensor, groups: int, dilation: Pair) -> bool:
    # traced (export) first: shapes are tensors then, and comparing them would warn
    return (
        _eager()
        and groups > 1
        and weight.requires_grad
        and torch.is_grad_enabled()
        and groups == x.shape[1] == weight.shape[0]
        and weight.shape[1] == 1
        and tuple(dilation) == (1, 1)
        and x.shape[-2] * x.shape[-1] <= SMALL_MAP
    )


def conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int,
) -> torch.Tensor:
    """``F.conv2d``, with the tap-by-tap weight gradient for depthwise convs on small maps."""
    if bias is None and takes_tap_path(x, weight, groups, dilation):
        return SmallMapDepthwise.apply(x, weight, tuple(stride), tuple(padding))
    return F.conv2d(x, weight, bias, stride, padding, dilation, groups)


def pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A 1x1, stride-1, ungrouped convolution; a matrix product on small channels-last maps."""
    if (
        _eager()
        and x.shape[-2] * x.shape[-1] <= MATMUL_MAP
        and x.is_contiguous(memory_format=torch.channels_last)
    ):
        return F.linear(x.permute(0, 2, 3, 1), weight.flatten(1), bias).permute(0, 3, 1, 2)
    return F.conv2d(x, weight, bias)
