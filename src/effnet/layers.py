"""The layers every block and the network's stem and head are made of: convolutions with
either padding, batch norm, activations, stochastic depth, squeeze-and-excitation, and
the one conv -> batch norm -> activation unit (:class:`ConvNormAct`).

Layer names follow timm's role names (conv_pw, bn1, conv_dw, bn2, se, conv_pwl, bn3), so a
unit adds its conv, its batch norm and its activation to the module that owns it under
those names (flat, as timm's state dicts have them) instead of nesting a submodule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from effnet import convs
from effnet.arch import Norm, Padding

ConvBnPairs = tuple[tuple[str, str], ...]  # (conv, its batch norm) by submodule name, to fold


def activation(name: str) -> nn.Module:
    return {"silu": nn.SiLU, "relu": nn.ReLU, "relu6": nn.ReLU6}[name](inplace=True)


def same_pad_amount(size: int, kernel: int, stride: int, dilation: int = 1) -> int:
    """Total padding TensorFlow's 'SAME' adds along one axis of length ``size``."""
    out = (size + stride - 1) // stride  # ceil; traces to ONNX correctly (int Div truncates)
    return max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)


class Conv2dSame(nn.Conv2d):
    """Conv with TensorFlow 'SAME' padding computed from the input size at forward time.

    Not frozen for one resolution, so other resolutions and dynamic-shape export work.
    The extra pixel of an odd total goes to the bottom/right, as in TensorFlow.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.kernel_size
        sh, sw = self.stride
        ph = same_pad_amount(ih, kh, sh, self.dilation[0])
        pw = same_pad_amount(iw, kw, sw, self.dilation[1])
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return convs.conv2d(x, self.weight, self.bias, self.stride, (0, 0), self.dilation,
                                self.groups)  # fmt: skip


class DepthwiseConv2d(nn.Conv2d):
    """A depthwise conv with symmetric padding that trains fast on small maps too."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return convs.conv2d(x, self.weight, self.bias, self.stride, self.padding,
                                self.dilation, self.groups)  # fmt: skip


class PointwiseConv2d(nn.Conv2d):
    """A 1x1 conv computed as a matrix product where maps are small."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return convs.pointwise(x, self.weight, self.bias)


def conv(
    cin: int,
    cout: int,
    kernel: int,
    stride: int = 1,
    groups: int = 1,
    padding: Padding = Padding.SYMMETRIC,
    bias: bool = False,
) -> nn.Conv2d:
    """A conv with symmetric (k // 2) or TensorFlow-'SAME' padding."""
    if padding == Padding.SAME and (stride > 1 or kernel > 1):
        return Conv2dSame(cin, cout, kernel, stride, 0, groups=groups, bias=bias)
    if groups > 1 and groups == cin == cout:
        return DepthwiseConv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=bias)
    if kernel == 1 and stride == 1 and groups == 1:
        return PointwiseConv2d(cin, cout, 1, bias=bias)
    return nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=bias)


def batch_norm(channels: int, norm: Norm) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=norm.eps, momentum=norm.momentum)


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample, scale kept ones by 1/keep."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f"rate={self.rate:.4f}"


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: global pool, reduce, activation, expand, sigmoid gate."""

    def __init__(self, channels: int, reduced: int, act: str) -> None:
        super().__init__()
        self.conv_reduce = PointwiseConv2d(channels, reduced, 1, bias=True)
        self.act1 = activation(act)
        self.conv_expand = PointwiseConv2d(reduced, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = self.conv_expand(self.act1(self.conv_reduce(s)))
        return x * s.sigmoid()


@dataclass(frozen=True)
class ConvNormAct:
    """One conv -> batch norm -> activation unit of a module, by the names its layers take
    there (``act`` None: linear, e.g. a projection). Every block, the stem and the head are
    built from these, so the pairing of a conv with its batch norm (what BN folding at
    export reads: :func:`pairs`) is stated once, where the unit is declared."""

    conv: str
    bn: str
    act: str | None = None

    def build(
        self, owner: nn.Module, cin: int, cout: int, kernel: int, stride: int = 1,
        groups: int = 1, *, act: str, norm: Norm, padding: Padding,
    ) -> None:  # fmt: skip
        setattr(owner, self.conv, conv(cin, cout, kernel, stride, groups=groups, padding=padding))
        setattr(owner, self.bn, batch_norm(cout, norm))
        if self.act is not None:
            setattr(owner, self.act, activation(act))

    def __call__(self, owner: nn.Module, x: torch.Tensor) -> torch.Tensor:
        x = getattr(owner, self.bn)(getattr(owner, self.conv)(x))
        return getattr(owner, self.act)(x) if self.act is not None else x


def pairs(*units: ConvNormAct) -> ConvBnPairs:
    """The (conv, batch norm) names of ``units``, as BN folding reads them."""
    return tuple((u.conv, u.bn) for u in units)


def init_weights(module: nn.Module) -> None:
    """The official code's initialisation: fan-out normal convs, uniform classifier.

    Shape-only (meta) models are left alone: there is nothing to initialise, and
    random ops on meta tensors are slow.
    """
    if any(p.is_meta for p in module.parameters()):
        return
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.out_features)
            nn.init.uniform_(m.weight, -bound, bound)
            nn.init.zeros_(m.bias)
