"""Published weights: the table of tags (``table``) and their downloads (``fetch``)."""

from effnet.pretrained.table import (
    PretrainedCfg,
    all_tags,
    imagenet_classes,
    list_pretrained,
    lookup,
    split_name,
    tags_of,
)

__all__ = [
    "PretrainedCfg",
    "all_tags",
    "imagenet_classes",
    "list_pretrained",
    "lookup",
    "split_name",
    "tags_of",
]
