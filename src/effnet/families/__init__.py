"""Literal architecture tables, one module per family (no torch)."""

from __future__ import annotations

from effnet.arch import Architecture
from effnet.scaling import scale


def released_variant(
    base: Architecture, name: str, coefficients: tuple[float, float, int, float]
) -> Architecture:
    """``base`` scaled by a released (width, depth, resolution px, dropout) row, with the
    official code's eval crop res / (res + 32) (0.875 at 224)."""
    width, depth, res, dropout = coefficients
    arch = scale(base, depth=depth, width=width, name=name)
    return arch.replace(resolution=res, dropout=dropout, crop_pct=round(res / (res + 32), 4))
