"""Parameters, multiply-adds and activation memory of a model at a given input size.

Multiply-adds come from torch.utils.flop_counter (FLOPs / 2, the paper's convention)
and are counted on the meta device, so even B7 at 600x600 costs no compute.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from effnet.arch import Architecture


@dataclass(frozen=True)
class Profile:
    params: int  # trainable and frozen parameters
    macs: int  # multiply-adds of one forward pass at batch size 1
    activations: int  # bytes saved for backward at batch size 1 (training memory)
    resolution: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, resolution: int, in_chans: int | None = None) -> int:
    """Multiply-adds of one image (FLOPs / 2), counted without computing anything."""
    in_chans = in_chans or getattr(model, "in_chans", 3)
    meta = _on_meta(model)
    x = torch.empty(1, in_chans, resolution, resolution, device="meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        meta.eval()(x)
    return counter.get_total_flops() // 2


def activation_bytes(model: nn.Module, resolution: int, in_chans: int | None = None) -> int:
    """Bytes of tensors autograd saves for backward for one image (what fills GPU memory)."""
    in_chans = in_chans or getattr(model, "in_chans", 3)
    meta = _on_meta(model)
    # batch 2, halved: batch norm refuses one value per channel in train mode (1x1 maps)
    x = torch.empty(2, in_chans, resolution, resolution, device="meta", requires_grad=True)
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if not isinstance(t, nn.Parameter):
            seen[id(t)] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        meta.train()(x)
    return sum(seen.values()) // 2


def _on_meta(model: nn.Module) -> nn.Module:
    """The same network with meta tensors (shapes only); the real weights are not copied."""
    from effnet.model import Network, build

    if next(model.parameters()).device.type == "meta":
        return model
    if isinstance(model, Network):
        with torch.device("meta"):
            return build(model.arch, num_classes=model.num_classes, in_chans=model.in_chans)
    import copy

    return copy.deepcopy(model).to("meta")


def profile_arch(
    arch: Architecture, resolution: int | None = None, num_classes: int = 1000, in_chans: int = 3
) -> Profile:
    """Profile an architecture at ``resolution`` (its own by default) on the meta device."""
    from effnet.model import build

    res = resolution or arch.resolution
    with torch.device("meta"):
        model = build(arch, num_classes=num_classes, in_chans=in_chans)
    return Profile(
        params=count_params(model),
        macs=count_macs(model, res, in_chans),
        activations=activation_bytes(model, res, in_chans),
        resolution=res,
    )


def profile(model: nn.Module, resolution: int) -> Profile:
    """Profile a built model (its weights are not touched)."""
    return Profile(
        params=count_params(model),
        macs=count_macs(model, resolution),
        activations=activation_bytes(model, resolution),
        resolution=resolution,
    )


def _meta_model(arch: Architecture) -> nn.Module:
    from effnet.model import build

    with torch.device("meta"):
        return build(arch)


@functools.lru_cache(maxsize=4096)
def macs_of(arch: Architecture) -> float:
    """Cost function for budget fitting: multiply-adds at the architecture's resolution."""
    return float(count_macs(_meta_model(arch), arch.resolution))


@functools.lru_cache(maxsize=4096)
def params_of(arch: Architecture) -> float:
    """Cost function for budget fitting: parameters with a 1000-class head."""
    return float(count_params(_meta_model(arch)))


def params_and_macs(arch: Architecture, num_classes: int = 1000) -> tuple[int, int]:
    """(parameters, multiply-adds) at the architecture's own resolution; one meta build."""
    from effnet.model import build

    with torch.device("meta"):
        model = build(arch, num_classes=num_classes)
    return count_params(model), count_macs(model, arch.resolution)


def family_table(names: list[str]) -> list[dict[str, Any]]:
    """Table 2 of the paper for the named models, measured, with the published figures."""
    from effnet.families import efficientnet, mobilenet, resnet
    from effnet.registry import get_arch

    published = {
        **{k: (*v, None) for k, v in {**mobilenet.PUBLISHED, **resnet.PUBLISHED}.items()},
        **efficientnet.PAPER_TABLE2,
    }
    rows = []
    for name in names:
        arch = get_arch(name)
        params, macs = params_and_macs(arch)
        paper = published.get(name.removeprefix("tf_"), (None, None, None))
        rows.append(
            dict(
                model=name,
                width=arch.width,
                depth=arch.depth,
                resolution=arch.resolution,
                dropout=arch.dropout,
                params=params,
                macs=macs,
                paper_params_m=paper[0],
                paper_macs_b=paper[1],
                paper_top1=paper[2],
            )  # fmt: skip
        )
    return rows
