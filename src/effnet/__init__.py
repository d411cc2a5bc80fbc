"""effnet: EfficientNet and compound model scaling (Tan & Le 2019) in PyTorch."""

from pathlib import Path
from typing import Any

from effnet.arch import Architecture, Block, Head, Norm, Padding, Stage, Stem
from effnet.errors import EffnetError
from effnet.registry import create_model, get_arch, list_models
from effnet.scaling import compound, fit_budget, round_filters, round_repeats, scale, scale_phi

__all__ = [
    "Architecture",
    "Block",
    "EffnetError",
    "Head",
    "Norm",
    "Padding",
    "Stage",
    "Stem",
    "compound",
    "create_model",
    "fit_budget",
    "from_pretrained",
    "get_arch",
    "list_models",
    "round_filters",
    "round_repeats",
    "scale",
    "scale_phi",
]
__version__ = "0.1.0"


def from_pretrained(directory: str | Path) -> Any:
    """A model saved with ``save_pretrained`` (see effnet.weights; imports torch lazily)."""
    from effnet.weights import from_pretrained as load

    return load(directory)
