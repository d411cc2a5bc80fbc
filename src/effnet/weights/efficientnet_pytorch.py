"""Key names of the ``efficientnet_pytorch`` package (PyPI ``efficientnet-pytorch``).

Its model keeps every block in one flat list (``_blocks.N``, numbered across stages) and
names layers by role with a leading underscore; ours numbers blocks by stage and repeat
(``blocks.S.J``). Block N of theirs is block N of ours in build order, so the map needs
the target model's block list, and a checkpoint of another size shows up as a tensor
without a place (or a place without a tensor) when the two are checked key for key.

Conventions the state dict does not carry: its weights are ports of the TensorFlow
checkpoints, with batch-norm epsilon 1e-3 and TensorFlow "same" padding. Its default
build freezes that padding for the image size it was built for (``Conv2dStaticSamePadding``);
ours computes it from the input at run time, which gives the same padding at that size
(and at every size whose feature maps have the same parity at each strided layer).
"""

from __future__ import annotations

import re

import torch

Mapped = dict[str, tuple[str, torch.Tensor]]  # our name -> (checkpoint name, tensor)

# Its names -> ours, outside and inside a block. Inside, its _bn0/_bn1/_bn2 follow the
# expansion, depthwise and projection convs; outside, _bn0 is the stem's and _bn1 the head's.
TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
       "_fc": "classifier"}  # fmt: skip
BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
         "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand",
         "_project_conv": "conv_pwl", "_bn2": "bn3"}  # fmt: skip
UNKNOWN = "?"  # prefix of names no model of ours has, so such tensors are reported as extra

_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(_[a-z_0-9]+)\.(\w+)$")
_TOP_KEY = re.compile(r"(_[a-z_0-9]+)\.(\w+)$")


def is_efficientnet_pytorch(state_dict: dict[str, torch.Tensor]) -> bool:
    """Its stem is the one tensor every checkpoint of the package has."""
    return "_conv_stem.weight" in state_dict


def block_prefixes(target: dict[str, torch.Tensor]) -> list[str]:
    """Our blocks in build order: ``blocks.S.J.`` sorted by stage, then repeat."""
    found = {m.group(0) for k in target if (m := re.match(r"blocks\.\d+\.\d+\.", k))}
    return sorted(found, key=lambda p: [int(n) for n in p.split(".")[1:3]])


def map_efficientnet_pytorch(
    state_dict: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
) -> Mapped:
    """Every tensor of an ``efficientnet_pytorch`` state dict under our name for it."""
    blocks = block_prefixes(target)
    return {our_name(key, blocks): (key, t) for key, t in state_dict.items()}


def our_name(key: str, blocks: list[str]) -> str:
    """Our name for one of its keys; ``UNKNOWN + key`` when there is none."""
    m = _BLOCK_KEY.match(key)
    if m:
        index, layer, tail = int(m.group(1)), m.group(2), m.group(3)
        if index < len(blocks) and layer in BLOCK:
            return f"{blocks[index]}{BLOCK[layer]}.{tail}"
        return UNKNOWN + key
    m = _TOP_KEY.match(key)
    if m and m.group(1) in TOP:
        return f"{TOP[m.group(1)]}.{m.group(2)}"
    return UNKNOWN + key
