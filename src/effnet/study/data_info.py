"""What a study's data holds, read without loading the dataset: classes, channels, pixels
(the source's entry in ``effnet.data.sources``)."""

from __future__ import annotations

from typing import Any

from effnet.data.sources import source_of
from effnet.data.spec import FASHION_MNIST


def data_shape(data: dict[str, Any]) -> tuple[int, int]:
    """(num_classes, in_chans) of the study's data, without loading any image."""
    source = data.get("source", FASHION_MNIST)
    return source_of(source).shape(source)


def native_resolution(data: dict[str, Any]) -> int | None:
    """The pixels the study's images hold (the smaller side), or None when unknown."""
    source = data.get("source", FASHION_MNIST)
    try:
        return source_of(source).native(source)
    except Exception:  # noqa: BLE001 - a report line, never a failure
        return None
