"""ResNet-50/101/152 (He et al. 2016, Table 1): ResNet-50 is a baseline of Table 3 of Tan
& Le; ResNet-101 and -152 are the baselines of its Table 4 (latency). The three differ only
in their stages' layer counts.

Bottleneck blocks 1x1-3x3-1x1 with the stride on the 3x3 ("v1.5", as torchvision and
timm), a 1x1 projection shortcut where the shape changes, and a 7x7/2 stem followed by a
3x3/2 max-pool. ``out_channels`` is the block's output width (4x the bottleneck width), so
``expand=0.25`` gives the 1x1-3x3 width.

Width multiplies every channel count: the stem and, through ``out_channels``, both the
bottleneck and the output width of every block. Depth multiplies every stage's layer count
(``ceil(L * d)``: [3, 4, 6, 3] -> [12, 16, 24, 12] at d=4).
"""

from __future__ import annotations

from dataclasses import replace

from effnet.arch import Architecture, Block, Head, Norm, Stage, Stem

BN = Block.BOTTLENECK

RESNET50 = Architecture(
    name="resnet50",
    stem=Stem(out_channels=64, kernel=7, stride=2, pool=True),  # conv1, 3x3 max pool / 2
    stages=(
        Stage(BN, kernel=3, stride=1, out_channels=256, layers=3, expand=0.25),  # conv2_x 56
        Stage(BN, kernel=3, stride=2, out_channels=512, layers=4, expand=0.25),  # conv3_x 28
        Stage(BN, kernel=3, stride=2, out_channels=1024, layers=6, expand=0.25),  # conv4_x 14
        Stage(BN, kernel=3, stride=2, out_channels=2048, layers=3, expand=0.25),  # conv5_x 7
    ),
    head=Head(out_channels=0),  # average pool, 1000-d fc: no 1x1 head conv
    resolution=224,
    dropout=0.0,
    drop_path=0.0,
    activation="relu",
    norm=Norm(eps=1e-5, momentum=0.1),  # PyTorch defaults, as torchvision
    interpolation="bilinear",
)


def _with_layers(name: str, layers: tuple[int, int, int, int]) -> Architecture:
    """ResNet-50's layout with other layer counts per stage (Table 1 of He et al.)."""
    stages = tuple(replace(s, layers=n) for s, n in zip(RESNET50.stages, layers, strict=True))
    return RESNET50.replace(name=name, stages=stages)


RESNET101 = _with_layers("resnet101", (3, 4, 23, 3))
RESNET152 = _with_layers("resnet152", (3, 8, 36, 3))

# Table 3's compound rows (effnet.paper.TABLE3) do not publish their coefficients: the
# phi whose compound scaling (alpha 1.2, beta 1.1, gamma 1.15) of ResNet-50 comes nearest
# to the 16.7B multiply-adds of Table 3's compound row (found with scaling.fit, "nearest"):
# 16.73B (+0.2%); every phi in [2.042, 2.054] gives that network (d 1.45, w 1.21, 298 px).
COMPOUND_PHI: dict[str, float] = {"resnet50": 2.048}

ARCHITECTURES = {
    "resnet50": lambda: RESNET50,
    "resnet101": lambda: RESNET101,
    "resnet152": lambda: RESNET152,
}
