"""EfficientNet-B0 (Table 1 of Tan & Le 2019) and the released B0-B8 / L2 coefficients.

Width multiplies every channel count (stem, stages, head); depth multiplies every
stage's layer count. Stride 2 sits on the first block of stages 3, 4, 5 and 7.
"""

from __future__ import annotations

from effnet.arch import Architecture, Block, Head, Padding, Stage, Stem
from effnet.families import released_variant

MB = Block.MBCONV

# Table 1, stages 2-8: (operator, kernel, stride, out channels, layers); SE 0.25 everywhere.
B0 = Architecture(
    name="efficientnet_b0",
    stem=Stem(out_channels=32, kernel=3, stride=2),  # stage 1: Conv3x3, 224x224 -> 112x112
    stages=(
        Stage(MB, kernel=3, stride=1, out_channels=16, layers=1, expand=1, se=0.25),  # stage 2
        Stage(MB, kernel=3, stride=2, out_channels=24, layers=2, expand=6, se=0.25),  # stage 3
        Stage(MB, kernel=5, stride=2, out_channels=40, layers=2, expand=6, se=0.25),  # stage 4
        Stage(MB, kernel=3, stride=2, out_channels=80, layers=3, expand=6, se=0.25),  # stage 5
        Stage(MB, kernel=5, stride=1, out_channels=112, layers=3, expand=6, se=0.25),  # stage 6
        Stage(MB, kernel=5, stride=2, out_channels=192, layers=4, expand=6, se=0.25),  # stage 7
        Stage(MB, kernel=3, stride=1, out_channels=320, layers=1, expand=6, se=0.25),  # stage 8
    ),
    head=Head(out_channels=1280),  # stage 9: Conv1x1 & Pooling & FC
    resolution=224,
    dropout=0.2,
    drop_path=0.2,
)

# Released coefficients (official code, efficientnet_builder.py): (width, depth, res, dropout).
# They are not exactly alpha^phi, beta^phi, gamma^phi for one phi; kept for compatibility
# with existing weights. Parameter / multiply-add figures are Table 2's (None: unpublished).
RELEASED: dict[str, tuple[float, float, int, float]] = {
    "efficientnet_b0": (1.0, 1.0, 224, 0.2),
    "efficientnet_b1": (1.0, 1.1, 240, 0.2),
    "efficientnet_b2": (1.1, 1.2, 260, 0.3),
    "efficientnet_b3": (1.2, 1.4, 300, 0.3),
    "efficientnet_b4": (1.4, 1.8, 380, 0.4),
    "efficientnet_b5": (1.6, 2.2, 456, 0.4),
    "efficientnet_b6": (1.8, 2.6, 528, 0.5),
    "efficientnet_b7": (2.0, 3.1, 600, 0.5),
    "efficientnet_b8": (2.2, 3.6, 672, 0.5),
    "efficientnet_l2": (4.3, 5.3, 800, 0.5),
}


def released(name: str) -> Architecture:
    """One of the released models, built from B0 with the table's coefficients."""
    return released_variant(B0, name, RELEASED[name])


ARCHITECTURES = {name: (lambda n=name: released(n)) for name in RELEASED}


def tf_released(name: str) -> Architecture:
    """timm's ``tf_efficientnet_*``: a released model with TensorFlow's "same" padding.

    Their weights are ports of the official TensorFlow checkpoints; batch-norm epsilon 1e-3
    is already ours. timm's ``efficientnet_b*`` (trained in PyTorch) use symmetric padding.
    """
    return released(name.removeprefix("tf_")).replace(name=name, padding=Padding.SAME)


ARCHITECTURES.update({f"tf_{n}": (lambda n=n: tf_released(f"tf_{n}")) for n in RELEASED})
