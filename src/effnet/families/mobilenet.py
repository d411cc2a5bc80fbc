"""MobileNetV1 (Howard et al. 2017, Table 1) and MobileNetV2 (Sandler et al. 2018, Table 2).

Both are baselines of Table 3 of Tan & Le 2019, scaled there by the same compound method
as EfficientNet. What "width" and "depth" mean is declared in the data below, not in
code: width multiplies every channel count (the stem, every stage; MobileNetV2's 1280-wide
head only grows, never shrinks, as in its paper and torchvision), rounded to multiples of
8; depth multiplies the layer count of every stage (``ceil(L * d)``).
"""

from __future__ import annotations

from effnet.arch import Architecture, Block, Head, Norm, Stage, Stem

DS, MB = Block.DSCONV, Block.MBCONV

# PyTorch's batch-norm defaults, as in torchvision's MobileNetV2.
TORCH_NORM = Norm(eps=1e-5, momentum=0.1)

# Howard et al. 2017, Table 1: "Conv dw / s, Conv 1x1" pairs are one depthwise-separable
# block. Rows with the same output width form a stage; its first block takes the stride.
# (The paper's table prints s2 on the second-to-last depthwise conv, a known typo: the
# feature map stays 7x7; every implementation uses stride 1 there.)
MOBILENET_V1 = Architecture(
    name="mobilenet_v1",
    stem=Stem(out_channels=32, kernel=3, stride=2),  # Conv 3x3 / s2, 224 -> 112
    stages=(
        Stage(DS, kernel=3, stride=1, out_channels=64, layers=1),  # 112x112
        Stage(DS, kernel=3, stride=2, out_channels=128, layers=2),  # 112 -> 56
        Stage(DS, kernel=3, stride=2, out_channels=256, layers=2),  # 56 -> 28
        Stage(DS, kernel=3, stride=2, out_channels=512, layers=6),  # 28 -> 14, "5x" + 1
        Stage(DS, kernel=3, stride=2, out_channels=1024, layers=2),  # 14 -> 7
    ),
    head=Head(out_channels=0),  # Avg Pool 7x7, FC 1000: no 1x1 head conv
    resolution=224,
    dropout=0.0,
    drop_path=0.0,
    activation="relu",
    norm=TORCH_NORM,
    interpolation="bilinear",
)

# Sandler et al. 2018, Table 2: (expansion t, out channels c, repeats n, stride s).
MOBILENET_V2 = Architecture(
    name="mobilenet_v2",
    stem=Stem(out_channels=32, kernel=3, stride=2),  # conv2d 3x3 / s2, 224 -> 112
    stages=(
        Stage(MB, kernel=3, stride=1, out_channels=16, layers=1, expand=1),  # 112x112
        Stage(MB, kernel=3, stride=2, out_channels=24, layers=2, expand=6),  # 112 -> 56
        Stage(MB, kernel=3, stride=2, out_channels=32, layers=3, expand=6),  # 56 -> 28
        Stage(MB, kernel=3, stride=2, out_channels=64, layers=4, expand=6),  # 28 -> 14
        Stage(MB, kernel=3, stride=1, out_channels=96, layers=3, expand=6),  # 14x14
        Stage(MB, kernel=3, stride=2, out_channels=160, layers=3, expand=6),  # 14 -> 7
        Stage(MB, kernel=3, stride=1, out_channels=320, layers=1, expand=6),  # 7x7
    ),
    head=Head(out_channels=1280, only_grow=True),  # conv2d 1x1, 1280; avgpool; FC
    resolution=224,
    dropout=0.2,  # torchvision
    drop_path=0.0,
    activation="relu6",
    norm=TORCH_NORM,
    interpolation="bilinear",
)

# Table 3's compound rows (effnet.paper.TABLE3) do not publish their coefficients: the
# phi whose compound scaling (alpha 1.2, beta 1.1, gamma 1.15) of MobileNetV2 comes nearest
# to the 1.3B multiply-adds of Table 3's compound row (found with scaling.fit, "nearest"):
# 1.284B (-1.2%); every phi in [1.804, 1.810] gives that network (d 1.39, w 1.19, 288 px).
COMPOUND_PHI: dict[str, float] = {"mobilenet_v2": 1.807}

ARCHITECTURES = {
    "mobilenet_v1": lambda: MOBILENET_V1,
    "mobilenet_v2": lambda: MOBILENET_V2,
}
