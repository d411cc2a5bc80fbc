"""What a study's data holds, read without loading the dataset: classes, channels, pixels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from effnet.errors import EffnetError


def data_shape(data: dict[str, Any]) -> tuple[int, int]:
    """(num_classes, in_chans) of the study's data, without loading any image."""
    source = data.get("source", "fashion-mnist")
    if source == "fashion-mnist":
        return 10, 1
    train = Path(source) / "train"
    if not train.is_dir():
        raise EffnetError(f"data source {source}: no train/ folder (expected an ImageFolder root)")
    classes = [p for p in train.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if not classes:
        raise EffnetError(f"data source {source}: train/ holds no class folders")
    return len(classes), 3


def native_resolution(data: dict[str, Any]) -> int | None:
    """The pixels the study's images hold (the smaller side of the first training image of
    an ImageFolder; 28 for Fashion-MNIST), or None when it cannot be read."""
    source = data.get("source", "fashion-mnist")
    if source == "fashion-mnist":
        return 28
    try:
        # PIL: only this check reads an image; the plan does not
        from PIL import Image

        first_class = sorted(p for p in (Path(source) / "train").iterdir() if p.is_dir())[0]
        first = sorted(p for p in first_class.iterdir() if p.is_file())[0]
        with Image.open(first) as im:
            return min(im.size)
    except (OSError, IndexError, ValueError):
        return None
