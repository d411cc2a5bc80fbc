"""build(): an Architecture becomes an nn.Module in one loop over stages and repeats."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint_sequential

from effnet.arch import Architecture
from effnet.blocks import make_block
from effnet.errors import EffnetError
from effnet.layers import ConvBnPairs, ConvNormAct, init_weights, pairs
from effnet.memory import check_build


class Network(nn.Module):
    """A ConvNet built from an :class:`Architecture`: stem, stages of blocks, head.

    ``forward_features`` returns the last feature map, ``forward_head`` pools and
    classifies, ``forward_pyramid`` returns the stride-2/4/8/16/32 maps (detection and
    segmentation backbones); with ``features_only=True`` ``forward`` returns those.
    """

    STEM, HEAD = ConvNormAct("conv_stem", "bn1", "act1"), ConvNormAct("conv_head", "bn2", "act2")
    conv_bn_pairs: ClassVar[ConvBnPairs] = pairs(STEM, HEAD)

    def __init__(
        self,
        arch: Architecture,
        num_classes: int = 1000,
        in_chans: int = 3,
        features_only: bool = False,
        out_indices: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if num_classes < 0 or in_chans < 1:
            raise EffnetError(f"num_classes must be >= 0 and in_chans >= 1 ({arch.name})")
        self.arch = arch
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.features_only = features_only
        self.grad_checkpointing = False
        norm, act = arch.norm, arch.activation

        common = dict(act=act, norm=norm, padding=arch.padding)
        self.STEM.build(self, in_chans, arch.stem.out_channels, arch.stem.kernel,
                        arch.stem.stride, **common)  # fmt: skip
        self.stem_pool = nn.MaxPool2d(3, 2, 1) if arch.stem.pool else None

        total, index = arch.num_blocks, 0
        cin = arch.stem.out_channels
        stages = []
        for s in arch.stages:
            blocks = []
            for r in range(s.layers):
                rate = arch.drop_path * index / total  # grows linearly over the blocks
                blocks.append(make_block(arch, s, cin, s.stride if r == 0 else 1, rate))
                cin, index = s.out_channels, index + 1
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.ModuleList(stages)

        self.num_features = arch.head.out_channels or cin
        if arch.head.out_channels:
            self.HEAD.build(self, cin, self.num_features, 1, **common)
        else:
            self.conv_head = self.bn2 = self.act2 = None
        self.global_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.dropout = nn.Dropout(arch.dropout)
        self.classifier = (
            nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        )
        levels = self._feature_info()
        if out_indices is None:
            out_indices = range(len(levels))
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in out_indices):
            raise EffnetError(f"out_indices must be whole numbers, got {list(out_indices)}")
        out_indices = tuple(out_indices)
        bad = [i for i in out_indices if not -len(levels) <= i < len(levels)]
        order = [i % len(levels) for i in out_indices] if not bad else []
        if order != sorted(set(order)):
            raise EffnetError(
                f"out_indices {list(out_indices)}: give each level once, shallow to deep "
                "(the maps come out in that order)"
            )
        if bad or not out_indices:
            raise EffnetError(
                f"out_indices {list(out_indices)}: {arch.name} has {len(levels)} feature levels "
                f"(0..{len(levels) - 1}, strides {', '.join(str(f['reduction']) for f in levels)})"
            )
        self.out_indices = tuple(i % len(levels) for i in out_indices)
        self.feature_info = FeatureInfo([levels[i] for i in self.out_indices])
        self.pretrained_cfg: dict[str, Any] = arch_cfg(arch, num_classes, in_chans)
        init_weights(self)

    # -- structure ------------------------------------------------------------------------
    def _feature_info(self) -> list[dict[str, Any]]:
        """The last stage at each output stride (2, 4, 8, ...), as timm's feature_info."""
        info: list[dict[str, Any]] = []
        stride = self.arch.stem.stride
        if self.arch.stem.pool:
            stride *= 2
        chs = self.arch.stem.out_channels
        for i, s in enumerate(self.arch.stages):
            if s.stride > 1 and i > 0:
                info.append(dict(stage=i - 1, num_chs=chs, reduction=stride,
                                 module=f"blocks.{i - 1}"))  # fmt: skip
            if s.stride > 1:
                stride *= s.stride
            chs = s.out_channels
        last = len(self.arch.stages) - 1
        info.append(dict(stage=last, num_chs=chs, reduction=stride, module=f"blocks.{last}"))
        if self.arch.stages[0].stride > 1:  # the stem's map is the first pyramid level
            info.insert(0, dict(stage=-1, num_chs=self.arch.stem.out_channels,
                                reduction=self.arch.stem.stride, module="act1"))  # fmt: skip
        return info

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each stage's activations in backward instead of storing them."""
        self.grad_checkpointing = enable

    @property
    def default_cfg(self) -> dict[str, Any]:  # timm's older name
        return self.pretrained_cfg

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier for ``num_classes`` outputs (0: return pooled features)."""
        self.num_classes = num_classes
        self.pretrained_cfg = {**self.pretrained_cfg, "num_classes": num_classes}
        self.classifier = (
            nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        )
        if num_classes:
            init_weights(self.classifier)

    def freeze(self, stages: int) -> None:
        """Freeze the stem and the first ``stages`` stages (parameters and BN statistics)."""
        if not 0 <= stages <= len(self.blocks):
            raise EffnetError(f"can freeze 0..{len(self.blocks)} stages, got {stages}")
        frozen = [self.conv_stem, self.bn1, *self.blocks[:stages]]
        for m in frozen:
            for p in m.parameters():
                p.requires_grad_(False)
        self._frozen = frozen

    def train(self, mode: bool = True) -> Network:
        super().train(mode)
        for m in getattr(self, "_frozen", []):
            m.eval()  # frozen BN keeps its running statistics
        return self

    # -- forward --------------------------------------------------------------------------
    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        x = self.STEM(self, x)
        return self.stem_pool(x) if self.stem_pool is not None else x

    def _run_stage(self, stage: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint_sequential(stage, len(stage), x, use_reentrant=False)
        return stage(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_stem(x)
        for stage in self.blocks:
            x = self._run_stage(stage, x)
        if self.conv_head is not None:
            x = self.HEAD(self, x)
        return x

    def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps at every output stride (the stage outputs listed in feature_info)."""
        wanted = {f["stage"] for f in self.feature_info}
        x = self.forward_stem(x)
        out = [x] if -1 in wanted else []
        for i, stage in enumerate(self.blocks):
            x = self._run_stage(stage, x)
            if i in wanted:
                out.append(x)
        return out

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(self.global_pool(x))
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if self.features_only:
            return self.forward_pyramid(x)
        return self.forward_head(self.forward_features(x))


class FeatureInfo(list):
    """The feature levels a model returns (dicts of ``num_chs``, ``reduction``, ``module``),
    with timm's accessors."""

    def channels(self) -> list[int]:
        return [f["num_chs"] for f in self]

    def reduction(self) -> list[int]:
        return [f["reduction"] for f in self]

    def module_name(self) -> list[str]:
        return [f["module"] for f in self]


def arch_cfg(arch: Architecture, num_classes: int, in_chans: int = 3) -> dict[str, Any]:
    """timm's ``pretrained_cfg`` of a model without published weights: its own
    preprocessing (the architecture's eval transform)."""
    return dict(
        architecture=arch.name, tag=None, input_size=(in_chans, arch.resolution, arch.resolution),
        interpolation=arch.interpolation, crop_pct=arch.crop_pct, crop_mode="center",
        mean=tuple(arch.mean), std=tuple(arch.std), num_classes=num_classes,
        first_conv="conv_stem", classifier="classifier",
    )  # fmt: skip


def build(
    arch: Architecture,
    num_classes: int = 1000,
    in_chans: int = 3,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
) -> Network:
    """The nn.Module for ``arch`` (weights initialised as in the official code).

    Refuses (EffnetError) a model that cannot fit in this machine's memory, before allocating.
    """

    check_build(arch, num_classes, in_chans)
    return Network(arch, num_classes=num_classes, in_chans=in_chans,
                   features_only=features_only, out_indices=out_indices)  # fmt: skip
