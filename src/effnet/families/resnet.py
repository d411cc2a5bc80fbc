"""ResNet-50 (He et al. 2016, Table 1, "50-layer" column), a baseline of Table 3 of Tan & Le.

Bottleneck blocks 1x1-3x3-1x1 with the stride on the 3x3 ("v1.5", as torchvision and
timm), a 1x1 projection shortcut where the shape changes, and a 7x7/2 stem followed by a
3x3/2 max-pool. ``out_channels`` is the block's output width (4x the bottleneck width), so
``expand=0.25`` gives the 1x1-3x3 width.

Width multiplies every channel count: the stem and, through ``out_channels``, both the
bottleneck and the output width of every block. Depth multiplies every stage's layer count
(``ceil(L * d)``: [3, 4, 6, 3] -> [12, 16, 24, 12] at d=4).
"""

from __future__ import annotations

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

# Published figures at 224x224 with 1000 classes: (params in millions, multiply-adds in
# billions); He et al. give 3.8 GFLOPs (counting the stride on the first 1x1), torchvision
# and Tan & Le 4.1B for the v1.5 layout used here.
PUBLISHED: dict[str, tuple[float, float]] = {"resnet50": (25.6, 4.1)}

# Table 3 of Tan & Le 2019: row -> (depth, width, resolution multipliers, multiply-adds in
# billions, top-1 %); ``None``: compound coefficients not published (see COMPOUND_PHI).
TABLE3: dict[str, dict[str, tuple[float | None, float | None, float | None, float, float]]] = {
    "resnet50": {
        "baseline": (1.0, 1.0, 1.0, 4.1, 76.0),
        "d=4": (4.0, 1.0, 1.0, 16.2, 78.1),
        "w=2": (1.0, 2.0, 1.0, 14.7, 77.7),
        "r=2": (1.0, 1.0, 2.0, 16.4, 77.5),
        "compound": (None, None, None, 16.7, 78.8),
    },
}

# phi whose compound scaling (alpha 1.2, beta 1.1, gamma 1.15) of ResNet-50 comes nearest
# to the 16.7B multiply-adds of Table 3's compound row (found with scaling.fit, "nearest"):
# 16.73B (+0.2%); every phi in [2.042, 2.054] gives that network (d 1.45, w 1.21, 298 px).
COMPOUND_PHI: dict[str, float] = {"resnet50": 2.048}

ARCHITECTURES = {"resnet50": lambda: RESNET50}
