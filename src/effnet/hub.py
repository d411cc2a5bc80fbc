"""The user-facing layer above the model builder and the weights: ``create_model``,
``from_pretrained``, ``save_pretrained`` and ``convert`` (what ``import effnet`` offers).

The layers below never import upwards: ``effnet.registry`` maps names to architectures (no
torch), ``effnet.model`` builds them, ``effnet.weights`` reads and writes weights; this
module puts them together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from effnet.arch import Architecture
from effnet.model import Network, build
from effnet.registry import get_arch
from effnet.weights import convert, from_pretrained, load_pretrained, save_pretrained

__all__ = ["convert", "create_model", "from_pretrained", "save_pretrained"]


def create_model(
    name: str | Path | Architecture,
    num_classes: int = 1000,
    in_chans: int = 3,
    pretrained: str | Path | None = None,
    features_only: bool = False,
    **overrides: Any,
) -> Network:
    """Build a model by name (``efficientnet_b0`` ...), architecture JSON file or object.

    ``overrides`` scale the architecture (``depth=``, ``width=``, ``resolution_mult=``,
    ``phi=``) or replace fields (``dropout=``, ``drop_path=``, ``resolution=`` in pixels,
    ``padding=``, ...). ``pretrained`` is a local weights file or directory in any format
    ``effnet.weights`` reads.
    """
    arch = get_arch(name, **overrides)
    model = build(arch, num_classes=num_classes, in_chans=in_chans, features_only=features_only)
    if pretrained is not None:
        load_pretrained(model, pretrained)
    return model
