"""EfficientNetV2 (Tan & Le 2021): Fused-MBConv in the early stages, MBConv after.

``tf_efficientnetv2_s/m/l`` are the official models (Table 4 of the V2 paper for S; M and
L from the official code's ``efficientnetv2_params``), as timm ports their weights:
"same" padding, batch-norm epsilon 1e-3, eval at full crop. ``efficientnetv2_s/m/l`` are
the same networks with symmetric padding (torchvision's ``efficientnet_v2_s/m/l``, whose
weights also use epsilon 1e-3).

``efficientnetv2_rw_t`` is timm's "tiny" variant (not in the paper): the EfficientNetV2-S
rows of timm's ``_gen_efficientnetv2_s`` (stem 24, channels 24/48/64/128/160/256, layers
2/4/4/6/9/15, head 1280) scaled by width 0.8 and depth 0.9, written out already rounded
(multiples of 8 with the 10% rule, as ``scale`` rounds; layers rounded up). It was trained
in PyTorch: symmetric padding, PyTorch's batch-norm defaults, eval at full crop.
"""

from __future__ import annotations

from effnet.arch import Architecture, Block, Head, Norm, Padding, Stage, Stem

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


def _v2(name: str, stem: int, rows: tuple[tuple[int, int, int, int], ...], dropout: float,
        resolution: int) -> Architecture:  # fmt: skip
    """(stride, out channels, layers, expand) per stage: 3 Fused-MBConv stages, then MBConv
    with SE 0.25 (of the block's input channels); 3x3 kernels throughout."""
    stages = []
    for i, (stride, out, layers, expand) in enumerate(rows):
        block = FMB if i < 3 else MB
        stages.append(Stage(block, kernel=3, stride=stride, out_channels=out, layers=layers,
                            expand=expand, se=0.25 if block is MB else 0.0))  # fmt: skip
    return Architecture(
        name=name,
        stem=Stem(out_channels=stem, kernel=3, stride=2),
        stages=tuple(stages),
        head=Head(out_channels=1280),
        resolution=resolution,
        dropout=dropout,
        drop_path=0.2,
        norm=Norm(eps=1e-3, momentum=0.01),
        padding=Padding.SAME,
        crop_pct=1.0,
    )


# (stride, out channels, layers, expand) per stage
S_ROWS = ((1, 24, 2, 1), (2, 48, 4, 4), (2, 64, 4, 4), (2, 128, 6, 4), (1, 160, 9, 6),
          (2, 256, 15, 6))  # fmt: skip
M_ROWS = ((1, 24, 3, 1), (2, 48, 5, 4), (2, 80, 5, 4), (2, 160, 7, 4), (1, 176, 14, 6),
          (2, 304, 18, 6), (1, 512, 5, 6))  # fmt: skip
L_ROWS = ((1, 32, 4, 1), (2, 64, 7, 4), (2, 96, 7, 4), (2, 192, 10, 4), (1, 224, 19, 6),
          (2, 384, 25, 6), (1, 640, 7, 6))  # fmt: skip
V2_S = _v2("tf_efficientnetv2_s", 24, S_ROWS, 0.2, 300)
V2_M = _v2("tf_efficientnetv2_m", 24, M_ROWS, 0.3, 384)
V2_L = _v2("tf_efficientnetv2_l", 32, L_ROWS, 0.4, 384)
OFFICIAL = (V2_S, V2_M, V2_L)
SYMMETRIC = tuple(
    a.replace(name=a.name.removeprefix("tf_"), padding=Padding.SYMMETRIC) for a in OFFICIAL
)

ARCHITECTURES = {a.name: (lambda a=a: a) for a in (RW_T, *OFFICIAL, *SYMMETRIC)}
