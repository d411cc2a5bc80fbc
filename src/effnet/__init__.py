"""effnet: EfficientNet and compound model scaling (Tan & Le 2019) in PyTorch."""

from typing import Any

from effnet.arch import Architecture, Block, Head, Norm, Padding, Stage, Stem
from effnet.errors import EffnetError
from effnet.registry import get_arch, list_models
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
    "convert",
    "create_model",
    "fit_budget",
    "from_pretrained",
    "get_arch",
    "list_models",
    "push_to_hub",
    "round_filters",
    "round_repeats",
    "scale",
    "save_pretrained",
    "scale_phi",
]
__version__ = "0.1.0"


# The torch-level names load on first use, so ``import effnet`` (architectures, scaling)
# does not import torch.
_TORCH_LEVEL = {
    "convert": "effnet.hub",
    "create_model": "effnet.hub",
    "from_pretrained": "effnet.hub",
    "save_pretrained": "effnet.hub",
    "push_to_hub": "effnet.hub",
}


def __getattr__(name: str) -> Any:
    if name in _TORCH_LEVEL:
        # importlib only on first use of a torch-level name
        import importlib

        return getattr(importlib.import_module(_TORCH_LEVEL[name]), name)
    raise AttributeError(f"module 'effnet' has no attribute {name!r}")
