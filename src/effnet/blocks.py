"""One short nn.Module per block type, plus the pieces they share.

A block class declares what the rest of the code needs to know about it: its ``block``
type (the Table-1 label lives with that type in ``effnet.arch.Block``), its
``conv_bn_pairs`` for folding batch norm at export, and ``from_stage`` to build it from a
stage row; ``BLOCKS`` registers it once.

Layer names follow timm's role names (conv_pw, bn1, conv_dw, bn2, se, conv_pwl, bn3) so
state dicts line up with the most used implementation; forward() reads top to bottom,
residual last.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from effnet import convs
from effnet.arch import Architecture, Block, Norm, Padding, Stage
from effnet.errors import EffnetError

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


class MBConv(nn.Module):
    """Inverted residual (MBConvN): expand 1x1, depthwise kxk, SE, project 1x1 (linear).

    The expansion conv is skipped when the ratio is 1 (MBConv1). SE width is a fraction
    of the block's *input* channels, as in EfficientNet. Residual only when stride is 1
    and in == out.
    """

    block: ClassVar[Block] = Block.MBCONV
    conv_bn_pairs: ClassVar[ConvBnPairs] = (
        ("conv_pw", "bn1"),
        ("conv_dw", "bn2"),
        ("conv_pwl", "bn3"),
    )

    @classmethod
    def from_stage(cls, s: Stage, cin: int, stride: int, drop_path: float, **common: Any) -> MBConv:
        return cls(cin, s.out_channels, s.kernel, stride, s.expand, s.se, s.skip,
                   drop_path=drop_path, **common)  # fmt: skip

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        stride: int,
        expand: float,
        se: float,
        skip: bool,
        act: str,
        norm: Norm,
        padding: Padding,
        drop_path: float,
    ) -> None:
        super().__init__()
        mid = int(round(cin * expand))
        self.has_skip = skip and stride == 1 and cin == cout
        expands = mid != cin
        self.conv_pw = conv(cin, mid, 1, padding=padding) if expands else None
        self.bn1 = batch_norm(mid, norm) if expands else None
        self.act1 = activation(act) if expands else None
        self.conv_dw = conv(mid, mid, kernel, stride, groups=mid, padding=padding)
        self.bn2 = batch_norm(mid, norm)
        self.act2 = activation(act)
        self.se = SqueezeExcite(mid, max(1, int(round(cin * se))), act) if se > 0 else None
        self.conv_pwl = conv(mid, cout, 1, padding=padding)
        self.bn3 = batch_norm(cout, norm)
        self.drop_path = DropPath(drop_path) if self.has_skip and drop_path > 0 else nn.Identity()

    def zero_init_last(self) -> None:
        """Start a residual block as the identity (its last BN scale at 0)."""
        if self.has_skip:
            nn.init.zeros_(self.bn3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        if self.conv_pw is not None:
            x = self.act1(self.bn1(self.conv_pw(x)))
        x = self.act2(self.bn2(self.conv_dw(x)))
        if self.se is not None:
            x = self.se(x)
        x = self.bn3(self.conv_pwl(x))
        if self.has_skip:
            x = self.drop_path(x) + shortcut
        return x


class ConvBnAct(nn.Module):
    """A regular kxk conv, batch norm, activation; residual when shapes allow and asked."""

    block: ClassVar[Block] = Block.CONV
    conv_bn_pairs: ClassVar[ConvBnPairs] = (("conv", "bn1"),)

    @classmethod
    def from_stage(
        cls, s: Stage, cin: int, stride: int, drop_path: float, **common: Any
    ) -> ConvBnAct:
        return cls(cin, s.out_channels, s.kernel, stride, s.skip, drop_path=drop_path, **common)

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        stride: int,
        skip: bool,
        act: str,
        norm: Norm,
        padding: Padding,
        drop_path: float,
    ) -> None:
        super().__init__()
        self.has_skip = skip and stride == 1 and cin == cout
        self.conv = conv(cin, cout, kernel, stride, padding=padding)
        self.bn1 = batch_norm(cout, norm)
        self.act1 = activation(act)
        self.drop_path = DropPath(drop_path) if self.has_skip and drop_path > 0 else nn.Identity()

    def zero_init_last(self) -> None:
        """Start a residual block as the identity (act(0) is 0 for silu and relu)."""
        if self.has_skip:
            nn.init.zeros_(self.bn1.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act1(self.bn1(self.conv(x)))
        return self.drop_path(y) + x if self.has_skip else y


class FusedMBConv(nn.Module):
    """Fused-MBConvN (EfficientNetV2): expand kxk (strided), optional SE, project 1x1 (linear).

    MBConv's 1x1 expansion and depthwise conv fused into one regular conv (faster on early,
    large maps); names are timm's EdgeResidual. Ratio 1 is one kxk conv + BN + act with the
    residual (official code; timm's ``cn`` block), so it is built as ``ConvBnAct``.
    """

    block: ClassVar[Block] = Block.FUSED_MBCONV
    conv_bn_pairs: ClassVar[ConvBnPairs] = (("conv_exp", "bn1"), ("conv_pwl", "bn2"))

    @classmethod
    def from_stage(
        cls, s: Stage, cin: int, stride: int, drop_path: float, **common: Any
    ) -> nn.Module:
        if int(round(cin * s.expand)) == cin:
            if s.se:
                raise EffnetError(f"Fused-MBConv1 is one conv and has no place for SE {s.se:g}")
            return ConvBnAct.from_stage(s, cin, stride, drop_path, **common)
        return cls(cin, s.out_channels, s.kernel, stride, s.expand, s.se, s.skip,
                   drop_path=drop_path, **common)  # fmt: skip

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int, expand: float, se: float,
        skip: bool, act: str, norm: Norm, padding: Padding, drop_path: float,
    ) -> None:  # fmt: skip
        super().__init__()
        mid = int(round(cin * expand))
        self.has_skip = skip and stride == 1 and cin == cout
        self.conv_exp = conv(cin, mid, kernel, stride, padding=padding)
        self.bn1 = batch_norm(mid, norm)
        self.act1 = activation(act)
        self.se = SqueezeExcite(mid, max(1, int(round(cin * se))), act) if se > 0 else None
        self.conv_pwl = conv(mid, cout, 1, padding=padding)
        self.bn2 = batch_norm(cout, norm)
        self.drop_path = DropPath(drop_path) if self.has_skip and drop_path > 0 else nn.Identity()

    def zero_init_last(self) -> None:
        """Start a residual block as the identity (its last BN scale at 0)."""
        if self.has_skip:
            nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.act1(self.bn1(self.conv_exp(x)))
        if self.se is not None:
            x = self.se(x)
        x = self.bn2(self.conv_pwl(x))
        if self.has_skip:
            x = self.drop_path(x) + shortcut
        return x


class DepthwiseSeparable(nn.Module):
    """MobileNetV1 block: depthwise kxk + BN + act, pointwise 1x1 + BN + act; no residual."""

    block: ClassVar[Block] = Block.DSCONV
    conv_bn_pairs: ClassVar[ConvBnPairs] = (("conv_dw", "bn1"), ("conv_pw", "bn2"))

    @classmethod
    def from_stage(
        cls, s: Stage, cin: int, stride: int, drop_path: float, **common: Any
    ) -> DepthwiseSeparable:
        return cls(cin, s.out_channels, s.kernel, stride, **common)

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int, act: str, norm: Norm, padding: Padding
    ) -> None:
        super().__init__()
        self.conv_dw = conv(cin, cin, kernel, stride, groups=cin, padding=padding)
        self.bn1 = batch_norm(cin, norm)
        self.act1 = activation(act)
        self.conv_pw = conv(cin, cout, 1, padding=padding)
        self.bn2 = batch_norm(cout, norm)
        self.act2 = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv_dw(x)))
        return self.act2(self.bn2(self.conv_pw(x)))


class Bottleneck(nn.Module):
    """ResNet bottleneck (v1.5: stride on the 3x3): 1x1, kxk, 1x1 (mid = out * expand).

    A 1x1 projection shortcut replaces the identity when the shape changes; the
    activation comes after the addition, as in He et al. 2016.
    """

    block: ClassVar[Block] = Block.BOTTLENECK
    conv_bn_pairs: ClassVar[ConvBnPairs] = (
        ("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"), ("downsample.0", "downsample.1"),
    )  # fmt: skip

    @classmethod
    def from_stage(
        cls, s: Stage, cin: int, stride: int, drop_path: float, **common: Any
    ) -> Bottleneck:
        return cls(cin, s.out_channels, s.kernel, stride, s.expand, drop_path=drop_path, **common)

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        stride: int,
        expand: float,
        act: str,
        norm: Norm,
        padding: Padding,
        drop_path: float,
    ) -> None:
        super().__init__()
        mid = max(1, int(round(cout * expand)))
        self.conv1 = conv(cin, mid, 1, padding=padding)
        self.bn1 = batch_norm(mid, norm)
        self.act1 = activation(act)
        self.conv2 = conv(mid, mid, kernel, stride, padding=padding)
        self.bn2 = batch_norm(mid, norm)
        self.act2 = activation(act)
        self.conv3 = conv(mid, cout, 1, padding=padding)
        self.bn3 = batch_norm(cout, norm)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                conv(cin, cout, 1, stride, padding=padding), batch_norm(cout, norm)
            )
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.act3 = activation(act)

    def zero_init_last(self) -> None:
        """Start the residual branch at 0, so the block passes its shortcut through."""
        nn.init.zeros_(self.bn3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.bn2(self.conv2(x)))
        x = self.bn3(self.conv3(x))
        return self.act3(self.drop_path(x) + shortcut)


# The one registration of the block types: make_block, the memory estimate, BN folding and
# the weight maps all read this; a Block with no class here is an error, never skipped.
BLOCKS: dict[Block, type[nn.Module]] = {
    cls.block: cls for cls in (MBConv, ConvBnAct, DepthwiseSeparable, Bottleneck, FusedMBConv)
}


def make_block(arch: Architecture, s: Stage, cin: int, stride: int, drop_path: float) -> nn.Module:
    """One block of a stage, built by the class registered for its type."""
    cls = BLOCKS.get(s.block)
    if cls is None:
        raise EffnetError(f"{arch.name}: no module for block type {s.block!r}")
    common = dict(act=arch.activation, norm=arch.norm, padding=arch.padding)
    return cls.from_stage(s, cin, stride, drop_path, **common)  # type: ignore[attr-defined]


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
