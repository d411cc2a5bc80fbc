"""EfficientNetV2 (Tan & Le 2021): Fused-MBConv in the early stages, MBConv after.

``efficientnetv2_rw_t`` is timm's "tiny" variant (not in the paper): the EfficientNetV2-S
rows of timm's ``_gen_efficientnetv2_s`` (stem 24, channels 24/48/64/128/160/256, layers
2/4/4/6/9/15, head 1280) scaled by width 0.8 and depth 0.9, written out already rounded
(multiples of 8 with the 10% rule, as ``scale`` rounds; layers rounded up). It was trained
in PyTorch: symmetric padding, PyTorch's batch-norm defaults, eval at full crop.
"""

from __future__ import annotations

from effnet.arch import Architecture, Block, Head, Norm, Stage, Stem

FMB, MB = Block.FUSED_MBCONV, Block.MBCONV

# EfficientNetV2's Table 4 layout; SE 0.25 of the block's input channels in MBConv stages only.
RW_T = Architecture(
    name="efficientnetv2_rw_t",
    stem=Stem(out_channels=24, kernel=3, stride=2),  # Conv3x3, 224x224 -> 112x112
    stages=(
        Stage(FMB, kernel=3, stride=1, out_channels=24, layers=2, expand=1),  # one conv + skip
        Stage(FMB, kernel=3, stride=2, out_channels=40, layers=4, expand=4),
        Stage(FMB, kernel=3, stride=2, out_channels=48, layers=4, expand=4),
        Stage(MB, kernel=3, stride=2, out_channels=104, layers=6, expand=4, se=0.25),
        Stage(MB, kernel=3, stride=1, out_channels=128, layers=9, expand=6, se=0.25),
        Stage(MB, kernel=3, stride=2, out_channels=208, layers=14, expand=6, se=0.25),
    ),
    head=Head(out_channels=1024),  # Conv1x1 & Pooling & FC
    resolution=224,  # timm's train size; it evaluates best at 288
    dropout=0.2,  # the official EfficientNetV2-S's; timm leaves both rates to the caller
    drop_path=0.2,
    norm=Norm(eps=1e-5, momentum=0.1),
    crop_pct=1.0,
)

ARCHITECTURES = {RW_T.name: lambda: RW_T}
