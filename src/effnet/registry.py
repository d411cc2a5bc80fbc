"""Model names -> architectures: a plain dict built from families/ (no torch).

``effnet.hub.create_model`` builds them.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from effnet.arch import Architecture
from effnet.errors import EffnetError
from effnet.families import efficientnet, efficientnetv2, lite, mobilenet, resnet
from effnet.scaling import ALPHA, BETA, GAMMA, scale, scale_phi

ARCHITECTURES: dict[str, Callable[[], Architecture]] = {
    **efficientnet.ARCHITECTURES,
    **efficientnetv2.ARCHITECTURES,
    **lite.ARCHITECTURES,
    **mobilenet.ARCHITECTURES,
    **resnet.ARCHITECTURES,
}

# fields of Architecture that get_arch (and so create_model) accept as overrides
_ARCH_FIELDS = {"resolution", "dropout", "drop_path", "activation", "padding", "norm"}
SCALE_KEYS = {"depth", "width", "resolution_mult", "phi", "alpha", "beta", "gamma"}


def list_models(
    filter: str | Sequence[str] = "", pretrained: bool = False, exclude_filters: str = ""
) -> list[str]:
    """Names effnet builds matching the shell-style ``filter`` (timm's ``list_models``);
    ``pretrained=True``: the ``architecture.tag`` of each published weight instead (sorted;
    architectures keep the registry's order, family by family)."""
    from effnet.pretrained.table import list_pretrained

    names = list_pretrained() if pretrained else list(ARCHITECTURES)
    patterns = [filter] if isinstance(filter, str) else list(filter)
    patterns = [p for p in patterns if p] or ["*"]
    out = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    if exclude_filters:
        out = [n for n in out if not fnmatch.fnmatchcase(n, exclude_filters)]
    return out


def get_arch(name_or_path: str | Path | Architecture, **overrides: Any) -> Architecture:
    """An architecture by registered name, JSON file path, or as given; then scaled/overridden.

    Scaling keys: ``depth``, ``width``, ``resolution_mult`` (multipliers) or ``phi`` (with
    optional ``alpha``, ``beta``, ``gamma``); other keys replace architecture fields.
    """

    if isinstance(name_or_path, Architecture):
        arch = name_or_path
    elif str(name_or_path) in ARCHITECTURES:
        arch = ARCHITECTURES[str(name_or_path)]()
    elif str(name_or_path).endswith(".json") or Path(name_or_path).is_file():
        arch = Architecture.load(name_or_path)
    else:
        known = ", ".join(ARCHITECTURES)
        raise EffnetError(f"unknown model {str(name_or_path)!r} (known: {known}; or an arch .json)")
    unknown = set(overrides) - _ARCH_FIELDS - SCALE_KEYS
    if unknown:
        raise EffnetError(f"unknown model option(s): {', '.join(sorted(unknown))}")
    s = {k: overrides.pop(k) for k in list(overrides) if k in SCALE_KEYS}
    if s.get("phi") is not None:
        coef = (s.get("alpha") or ALPHA, s.get("beta") or BETA, s.get("gamma") or GAMMA)
        arch = scale_phi(arch, float(s["phi"]), *coef)
    elif any(s.get(k) is not None for k in ("depth", "width", "resolution_mult")):
        arch = scale(
            arch,
            depth=float(s.get("depth") or 1.0),
            width=float(s.get("width") or 1.0),
            resolution_mult=float(s.get("resolution_mult") or 1.0),
        )
    fields = {k: v for k, v in overrides.items() if v is not None}
    pixels = fields.get("resolution")
    if isinstance(pixels, float):  # pixels are whole numbers: 2.0 is the paper's r = 2
        raise EffnetError(
            f"resolution is the input size in pixels, got {pixels!r}; for the paper's "
            f"resolution multiplier r use resolution_mult={pixels!r}"
        )
    return arch.replace(**fields) if fields else arch
