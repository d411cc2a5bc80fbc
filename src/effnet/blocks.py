"""One short nn.Module per block type, built from the shared layers of ``effnet.layers``.

A block class declares what the rest of the code needs to know about it: its ``block``
type (the Table-1 label lives with that type in ``effnet.arch.Block``), its
``conv_bn_pairs`` for folding batch norm at export (from its conv-norm-act units), and
``from_stage`` to build it from a stage row; ``BLOCKS`` registers it once.

Layer names follow timm's role names (conv_pw, bn1, conv_dw, bn2, se, conv_pwl, bn3) so
state dicts line up with the most used implementation; forward() reads top to bottom,
residual last.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from effnet.arch import Architecture, Block, Norm, Padding, Stage
from effnet.errors import EffnetError
from effnet.layers import (
    ConvBnPairs,
    ConvNormAct,
    DropPath,
    SqueezeExcite,
    activation,
    batch_norm,
    conv,
    pairs,
)


class Residual(nn.Module):
    """What a residual block shares: the skip when stride 1 and in == out (and the stage
    asks for it), stochastic depth on the branch, and starting as the identity."""

    last_bn: ClassVar[str]  # the batch norm that ends the branch (zeroed to start at 0)

    def _residual(self, cin: int, cout: int, stride: int, skip: bool, drop_path: float) -> None:
        self.has_skip = skip and stride == 1 and cin == cout
        self.drop_path = DropPath(drop_path) if self.has_skip and drop_path > 0 else nn.Identity()

    def zero_init_last(self) -> None:
        """Start a residual block as the identity (its last BN scale at 0)."""
        if self.has_skip:
            nn.init.zeros_(getattr(self, self.last_bn).weight)

    def _add(self, x: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        return self.drop_path(x) + shortcut if self.has_skip else x


def _se(mid: int, cin: int, se: float, act: str) -> SqueezeExcite | None:
    """SE on ``mid`` channels, its width a fraction of the block's *input* channels."""
    return SqueezeExcite(mid, max(1, int(round(cin * se))), act) if se > 0 else None


class MBConv(Residual):
    """Inverted residual (MBConvN): expand 1x1, depthwise kxk, SE, project 1x1 (linear).

    The expansion conv is skipped when the ratio is 1 (MBConv1). SE width is a fraction
    of the block's *input* channels, as in EfficientNet. Residual only when stride is 1
    and in == out.
    """

    block: ClassVar[Block] = Block.MBCONV
    PW, DW, PWL = (ConvNormAct("conv_pw", "bn1", "act1"), ConvNormAct("conv_dw", "bn2", "act2"),
                   ConvNormAct("conv_pwl", "bn3"))  # fmt: skip
    conv_bn_pairs: ClassVar[ConvBnPairs] = pairs(PW, DW, PWL)
    last_bn = "bn3"

    @classmethod
    def from_stage(cls, s: Stage, cin: int, stride: int, drop_path: float, **common: Any) -> MBConv:
        return cls(cin, s.out_channels, s.kernel, stride, s.expand, s.se, s.skip,
                   drop_path=drop_path, **common)  # fmt: skip

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int, expand: float, se: float,
        skip: bool, act: str, norm: Norm, padding: Padding, drop_path: float,
    ) -> None:  # fmt: skip
        super().__init__()
        mid = int(round(cin * expand))
        common = dict(act=act, norm=norm, padding=padding)
        self.expands = mid != cin
        if self.expands:
            self.PW.build(self, cin, mid, 1, **common)
        else:
            self.conv_pw = self.bn1 = self.act1 = None
        self.DW.build(self, mid, mid, kernel, stride, groups=mid, **common)
        self.se = _se(mid, cin, se, act)
        self.PWL.build(self, mid, cout, 1, **common)
        self._residual(cin, cout, stride, skip, drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        if self.expands:
            x = self.PW(self, x)
        x = self.DW(self, x)
        if self.se is not None:
            x = self.se(x)
        return self._add(self.PWL(self, x), shortcut)


class ConvBnAct(Residual):
    """A regular kxk conv, batch norm, activation; residual when shapes allow and asked."""

    block: ClassVar[Block] = Block.CONV
    CONV = ConvNormAct("conv", "bn1", "act1")
    conv_bn_pairs: ClassVar[ConvBnPairs] = pairs(CONV)
    last_bn = "bn1"  # act(0) is 0 for silu and relu: a zero scale starts it as the identity

    @classmethod
    def from_stage(
        cls, s: Stage, cin: int, stride: int, drop_path: float, **common: Any
    ) -> ConvBnAct:
        return cls(cin, s.out_channels, s.kernel, stride, s.skip, drop_path=drop_path, **common)

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int, skip: bool, act: str, norm: Norm,
        padding: Padding, drop_path: float,
    ) -> None:  # fmt: skip
        super().__init__()
        self.CONV.build(self, cin, cout, kernel, stride, act=act, norm=norm, padding=padding)
        self._residual(cin, cout, stride, skip, drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._add(self.CONV(self, x), x)


class FusedMBConv(Residual):
    """Fused-MBConvN (EfficientNetV2): expand kxk (strided), optional SE, project 1x1 (linear).

    MBConv's 1x1 expansion and depthwise conv fused into one regular conv (faster on early,
    large maps); names are timm's EdgeResidual. Ratio 1 is one kxk conv + BN + act with the
    residual (official code; timm's ``cn`` block), so it is built as ``ConvBnAct``.
    """

    block: ClassVar[Block] = Block.FUSED_MBCONV
    EXP, PWL = ConvNormAct("conv_exp", "bn1", "act1"), ConvNormAct("conv_pwl", "bn2")
    conv_bn_pairs: ClassVar[ConvBnPairs] = pairs(EXP, PWL)
    last_bn = "bn2"

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
        common = dict(act=act, norm=norm, padding=padding)
        self.EXP.build(self, cin, mid, kernel, stride, **common)
        self.se = _se(mid, cin, se, act)
        self.PWL.build(self, mid, cout, 1, **common)
        self._residual(cin, cout, stride, skip, drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.EXP(self, x)
        if self.se is not None:
            x = self.se(x)
        return self._add(self.PWL(self, x), shortcut)


class DepthwiseSeparable(nn.Module):
    """MobileNetV1 block: depthwise kxk + BN + act, pointwise 1x1 + BN + act; no residual."""

    block: ClassVar[Block] = Block.DSCONV
    DW, PW = ConvNormAct("conv_dw", "bn1", "act1"), ConvNormAct("conv_pw", "bn2", "act2")
    conv_bn_pairs: ClassVar[ConvBnPairs] = pairs(DW, PW)

    @classmethod
    def from_stage(
        cls, s: Stage, cin: int, stride: int, drop_path: float, **common: Any
    ) -> DepthwiseSeparable:
        return cls(cin, s.out_channels, s.kernel, stride, **common)

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int, act: str, norm: Norm, padding: Padding
    ) -> None:
        super().__init__()
        common = dict(act=act, norm=norm, padding=padding)
        self.DW.build(self, cin, cin, kernel, stride, groups=cin, **common)
        self.PW.build(self, cin, cout, 1, **common)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.PW(self, self.DW(self, x))


class Bottleneck(nn.Module):
    """ResNet bottleneck (v1.5: stride on the 3x3): 1x1, kxk, 1x1 (mid = out * expand).

    A 1x1 projection shortcut replaces the identity when the shape changes; the
    activation comes after the addition, as in He et al. 2016.
    """

    block: ClassVar[Block] = Block.BOTTLENECK
    C1, C2 = ConvNormAct("conv1", "bn1", "act1"), ConvNormAct("conv2", "bn2", "act2")
    C3 = ConvNormAct("conv3", "bn3")
    # the projection shortcut is a Sequential (timm's and torchvision's names)
    conv_bn_pairs: ClassVar[ConvBnPairs] = (*pairs(C1, C2, C3), ("downsample.0", "downsample.1"))

    @classmethod
    def from_stage(
        cls, s: Stage, cin: int, stride: int, drop_path: float, **common: Any
    ) -> Bottleneck:
        return cls(cin, s.out_channels, s.kernel, stride, s.expand, drop_path=drop_path, **common)

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int, expand: float, act: str,
        norm: Norm, padding: Padding, drop_path: float,
    ) -> None:  # fmt: skip
        super().__init__()
        mid = max(1, int(round(cout * expand)))
        common = dict(act=act, norm=norm, padding=padding)
        self.C1.build(self, cin, mid, 1, **common)
        self.C2.build(self, mid, mid, kernel, stride, **common)
        self.C3.build(self, mid, cout, 1, **common)
        self.downsample = None
        if stride != 1 or cin != cout:  # timm's and torchvision's names: a Sequential
            self.downsample = nn.Sequential(conv(cin, cout, 1, stride, padding=padding),
                                            batch_norm(cout, norm))  # fmt: skip
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.act3 = activation(act)

    def zero_init_last(self) -> None:
        """Start the residual branch at 0, so the block passes its shortcut through."""
        nn.init.zeros_(self.bn3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.C3(self, self.C2(self, self.C1(self, x)))
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
