"""The published numbers we reproduce or check against, each written once (no torch).

Tests, the study report and ``effnet models`` read them from here. Sources: Tan & Le 2019
(EfficientNet, v5 of the arXiv paper) and, for the other baselines' own sizes, the papers
that introduced them (as torchvision reports them).
"""

from __future__ import annotations

# Table 2: model -> (parameters in millions, multiply-adds in billions, ImageNet top-1 %).
TABLE2: dict[str, tuple[float, float, float]] = {
    "efficientnet_b0": (5.3, 0.39, 77.1),
    "efficientnet_b1": (7.8, 0.70, 79.1),
    "efficientnet_b2": (9.2, 1.0, 80.1),
    "efficientnet_b3": (12, 1.8, 81.6),
    "efficientnet_b4": (19, 4.2, 82.9),
    "efficientnet_b5": (30, 9.9, 83.6),
    "efficientnet_b6": (43, 19, 84.0),
    "efficientnet_b7": (66, 37, 84.3),
}

# Table 3: baseline -> row -> (depth, width, resolution multipliers, multiply-adds in
# billions, top-1 %). ``None`` multipliers: the compound coefficients were not published.
TABLE3: dict[str, dict[str, tuple[float | None, float | None, float | None, float, float]]] = {
    "mobilenet_v1": {
        "baseline": (1.0, 1.0, 1.0, 0.6, 70.6),
        "w=2": (1.0, 2.0, 1.0, 2.2, 74.2),
        "r=2": (1.0, 1.0, 2.0, 2.2, 72.7),
        "compound": (1.4, 1.2, 1.3, 2.3, 75.6),
    },
    "mobilenet_v2": {
        "baseline": (1.0, 1.0, 1.0, 0.3, 72.0),
        "d=4": (4.0, 1.0, 1.0, 1.2, 76.8),
        "w=2": (1.0, 2.0, 1.0, 1.1, 76.4),
        "r=2": (1.0, 1.0, 2.0, 1.2, 74.8),
        "compound": (None, None, None, 1.3, 77.4),
    },
    "resnet50": {
        "baseline": (1.0, 1.0, 1.0, 4.1, 76.0),
        "d=4": (4.0, 1.0, 1.0, 16.2, 78.1),
        "w=2": (1.0, 2.0, 1.0, 14.7, 77.7),
        "r=2": (1.0, 1.0, 2.0, 16.4, 77.5),
        "compound": (None, None, None, 16.7, 78.8),
    },
}

# Table 7: B0 scaled to about 1.8B multiply-adds by one method each -> (depth, width,
# resolution multipliers, multiply-adds in billions, ImageNet top-1 %).
TABLE7: dict[str, tuple[float, float, float, float, float]] = {
    "baseline": (1.0, 1.0, 1.0, 0.4, 77.3),
    "depth": (4.0, 1.0, 1.0, 1.8, 79.0),
    "width": (1.0, 2.0, 1.0, 1.8, 78.9),
    "resolution": (1.0, 1.0, 2.0, 1.9, 79.1),
    "compound": (1.4, 1.2, 1.3, 1.8, 81.1),
}

# The other baselines' own published sizes at 224x224 with 1000 classes: (parameters in
# millions, multiply-adds in billions). MobileNet papers: 4.2M / 569M and 3.4M (3.5M in
# torchvision) / 300M; ResNet-50: He et al. give 3.8 GFLOPs (counting the stride on the
# first 1x1), torchvision and Tan & Le 4.1B for the v1.5 layout used here.
BASELINES: dict[str, tuple[float, float]] = {
    "mobilenet_v1": (4.2, 0.57),
    "mobilenet_v2": (3.5, 0.30),
    "resnet50": (25.6, 4.1),
}


def top1_table7(method: str) -> float:
    """Table 7's ImageNet top-1 for a scaling method (``baseline``, ``depth``, ...).
    ``compound-paper`` (the balance of the paper's compound model) is that model's."""
    return TABLE7["compound" if method == "compound-paper" else method][4]
