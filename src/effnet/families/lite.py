"""EfficientNet-Lite0..4: the edge variants released with the official TensorFlow code.

Lite0 is B0's Table 1 with three changes that make it quantise and run well on mobile
accelerators (official ``efficientnet_lite_builder.py``): ReLU6 instead of Swish, no
squeeze-excitation, and TensorFlow's preprocessing (mean = std = 0.5 of the 0..1 range,
i.e. 127 and 128 in pixel values). Its larger siblings are scaled from Lite0 with their
own coefficients, and the scaling rules differ from B0's, which is declared in the data
below: the stem (32) and the head (1280) keep their width, and the first and last stages
keep their layer count (``fix_head_stem``), so that the largest and smallest feature maps
do not grow.
"""

from __future__ import annotations

from effnet.arch import Architecture, Block, Head, Padding, Stage, Stem
from effnet.families import released_variant

MB = Block.MBCONV

# B0's Table 1 stages 2-8 without SE; stage 2 and stage 8 are not depth-scaled.
LITE0 = Architecture(
    name="efficientnet_lite0",
    stem=Stem(out_channels=32, kernel=3, stride=2, scale_width=False),  # 224 -> 112, fixed
    stages=(
        Stage(MB, kernel=3, stride=1, out_channels=16, layers=1, expand=1, scale_depth=False),
        Stage(MB, kernel=3, stride=2, out_channels=24, layers=2, expand=6),
        Stage(MB, kernel=5, stride=2, out_channels=40, layers=2, expand=6),
        Stage(MB, kernel=3, stride=2, out_channels=80, layers=3, expand=6),
        Stage(MB, kernel=5, stride=1, out_channels=112, layers=3, expand=6),
        Stage(MB, kernel=5, stride=2, out_channels=192, layers=4, expand=6),
        Stage(MB, kernel=3, stride=1, out_channels=320, layers=1, expand=6, scale_depth=False),
    ),
    head=Head(out_channels=1280, scale_width=False),  # Conv1x1 & Pooling & FC, fixed
    resolution=224,
    dropout=0.2,
    drop_path=0.2,
    activation="relu6",
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
)

# Official efficientnet_lite_builder.py: (width, depth, resolution, dropout).
RELEASED: dict[str, tuple[float, float, int, float]] = {
    "efficientnet_lite0": (1.0, 1.0, 224, 0.2),
    "efficientnet_lite1": (1.0, 1.1, 240, 0.2),
    "efficientnet_lite2": (1.1, 1.2, 260, 0.3),
    "efficientnet_lite3": (1.2, 1.4, 280, 0.3),
    "efficientnet_lite4": (1.4, 1.8, 300, 0.3),
}


def released(name: str) -> Architecture:
    """One of Lite0..4; eval crop res / (res + 32) as in the official code (0.875 for Lite0)."""
    return released_variant(LITE0, name, RELEASED[name])


def tf_released(name: str) -> Architecture:
    """Lite with TensorFlow's "same" padding: the official checkpoints and their ports
    (timm's ``tf_efficientnet_lite*``, ``efficientnet_pytorch``-format Lite weights)."""
    return released(name.removeprefix("tf_")).replace(name=name, padding=Padding.SAME)


ARCHITECTURES = {name: (lambda n=name: released(n)) for name in RELEASED}
ARCHITECTURES.update({f"tf_{n}": (lambda n=n: tf_released(f"tf_{n}")) for n in RELEASED})
