"""The published weights effnet loads, as data: ``tags.json`` (written from timm's and
torchvision's own records by ``tools/make_pretrained_table.py``) holds one row per
``architecture.tag``: where the weights are (a hub repository or a URL), the preprocessing
they were trained and evaluated with, their classes and their published top-1.

A name is ``architecture`` or ``architecture.tag``; an architecture alone means its default
tag (timm's default where timm has weights, else torchvision's).
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from typing import Any

from effnet.errors import EffnetError


@dataclass(frozen=True)
class PretrainedCfg:
    """One tag's weights and the preprocessing that belongs to them (timm's field names)."""

    architecture: str
    tag: str
    source: str  # "timm" (a hub repository) or "torchvision" (a URL)
    hf_hub_id: str | None
    url: str | None
    input_size: tuple[int, int, int]
    test_input_size: tuple[int, int, int]
    crop_pct: float
    test_crop_pct: float
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int
    default: bool = False
    license: str | None = None
    top1: float | None = None  # published ImageNet-1k top-1 (%), at top1_size pixels
    top1_size: int | None = None
    torchvision: str | None = None  # torchvision's name of these weights

    @property
    def name(self) -> str:
        return f"{self.architecture}.{self.tag}"

    def to_dict(self) -> dict[str, Any]:
        """As timm's ``model.pretrained_cfg``: lists become tuples where timm has tuples."""
        d = asdict(self)
        for k in ("input_size", "test_input_size", "mean", "std"):
            d[k] = tuple(d[k])
        d.pop("default")
        return d


@cache
def _table() -> dict[str, PretrainedCfg]:
    text = resources.files("effnet.pretrained").joinpath("tags.json").read_text("utf-8")
    rows = json.loads(text)["tags"]
    out = {}
    for name, row in rows.items():
        for k in ("input_size", "test_input_size", "mean", "std"):
            row[k] = tuple(row[k])
        out[name] = PretrainedCfg(**row)
    return out


def all_tags() -> dict[str, PretrainedCfg]:
    return dict(_table())


def split_name(name: str) -> tuple[str, str | None]:
    """``efficientnet_b0.ra_in1k`` -> (``efficientnet_b0``, ``ra_in1k``); no dot: no tag."""
    arch, dot, tag = name.partition(".")
    return arch, (tag if dot else None)


def tags_of(arch: str) -> list[str]:
    return [c.tag for c in _table().values() if c.architecture == arch]


def lookup(arch: str, tag: str | None = None) -> PretrainedCfg:
    """The weights of ``arch.tag`` (``tag`` None: the default). A one-line error lists
    the tags there are, or says the architecture has none published."""
    known = tags_of(arch)
    if not known:
        raise EffnetError(
            f"{arch} has no published weights (effnet models --pretrained lists those that "
            "have); build it without pretrained=True, or load a local file with pretrained=PATH"
        )
    if tag is None:
        default = [c for c in _table().values() if c.architecture == arch and c.default]
        return default[0] if default else _table()[f"{arch}.{known[0]}"]
    cfg = _table().get(f"{arch}.{tag}")
    if cfg is None:
        raise EffnetError(f"unknown tag {tag!r} for {arch} (known: {', '.join(known)})")
    return cfg


def list_pretrained(pattern: str = "*") -> list[str]:
    """Every ``architecture.tag`` matching the shell-style ``pattern``, sorted."""
    return sorted(n for n in _table() if fnmatch.fnmatchcase(n, pattern))


def _lines(name: str) -> tuple[str, ...]:
    text = resources.files("effnet.pretrained").joinpath(name).read_text("utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


@cache
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names, in the order of the classifier's outputs."""
    return _lines("imagenet_classes.txt")


@cache
def imagenet_synsets() -> tuple[str, ...]:
    """The ImageNet-1k folder names (WordNet ids, ``n01440764``...), in the same order."""
    return _lines("imagenet_synsets.txt")
