"""Parameters, multiply-adds and activation memory of a model at a given input size.

Multiply-adds (the paper's "FLOPs") are summed from forward hooks on the convolutions and
linear layers of a copy of the model on the meta device, so even B7 at 600x600 costs no
compute. The tests check the figure against torch.utils.flop_counter (FLOPs / 2), which is
exact but dispatches every op through Python: budget fitting counts hundreds of networks.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from effnet import paper
from effnet.arch import Architecture
from effnet.model import Network, build
from effnet.registry import get_arch


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
    """Multiply-adds of one image, counted without computing anything.

    Convolutions cost output elements x kernel area x input channels per group, linear
    layers output elements x input features; normalisation, activations and pooling are
    not counted (the convention of the paper and of torch's flop counter).
    """
    in_chans = in_chans or getattr(model, "in_chans", 3)
    meta = _on_meta(model)
    total = 0

    def hook(m: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(m, nn.Conv2d):
            total += out.numel() * m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
        else:
            total += out.numel() * m.in_features

    handles, skipped = [], []
    for m in meta.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            handles.append(m.register_forward_hook(hook))
        elif isinstance(m, _ELEMENTWISE) and "forward" not in vars(m):
            m.forward = _same  # shape-preserving; on meta these run slow Python decompositions
            skipped.append(m)
    try:
        with torch.no_grad():
            meta.eval()(torch.empty(1, in_chans, resolution, resolution, device="meta"))
    finally:
        for h in handles:
            h.remove()
        for m in skipped:
            del m.forward
    return int(total)


def _same(x: torch.Tensor) -> torch.Tensor:
    return x


# batch norm, and activations: an in-place ReLU6 on meta takes 9 ms (torch's inplace_op
# decomposition), 26 of the 37 s that budget-matching a MobileNetV2 study took
_ELEMENTWISE = (
    nn.modules.batchnorm._BatchNorm,
    nn.ReLU,
    nn.ReLU6,
    nn.SiLU,
    nn.Sigmoid,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.GELU,
)


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

    if next(model.parameters()).device.type == "meta":
        return model
    if isinstance(model, Network):
        with torch.device("meta"):
            return build(model.arch, num_classes=model.num_classes, in_chans=model.in_chans)

    return copy.deepcopy(model).to("meta")


def profile_arch(
    arch: Architecture, resolution: int | None = None, num_classes: int = 1000, in_chans: int = 3
) -> Profile:
    """Profile an architecture at ``resolution`` (its own by default) on the meta device."""

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

    with torch.device("meta"):
        return build(arch)


@functools.lru_cache(maxsize=4096)
def arch_macs(arch: Architecture, num_classes: int = 1000, in_chans: int = 3) -> int:
    """Multiply-adds of one image at the architecture's resolution, with the given head."""

    with torch.device("meta"):
        model = build(arch, num_classes=num_classes, in_chans=in_chans)
    return count_macs(model, arch.resolution, in_chans)


def macs_of(arch: Architecture) -> float:
    """Cost function for budget fitting: multiply-adds at the architecture's resolution."""
    return float(arch_macs(arch))


@functools.lru_cache(maxsize=4096)
def params_of(arch: Architecture) -> float:
    """Cost function for budget fitting: parameters with a 1000-class head."""
    return float(count_params(_meta_model(arch)))


def params_and_macs(arch: Architecture, num_classes: int = 1000) -> tuple[int, int]:
    """(parameters, multiply-adds) at the architecture's own resolution; one meta build."""

    with torch.device("meta"):
        model = build(arch, num_classes=num_classes)
    return count_params(model), count_macs(model, arch.resolution)


def family_table(names: list[str]) -> list[dict[str, Any]]:
    """Table 2 of the paper for the named models, measured, with the published figures."""

    published = {**{k: (*v, None) for k, v in paper.BASELINES.items()}, **paper.TABLE2}
    rows = []
    for name in names:
        arch = get_arch(name)
        params, macs = params_and_macs(arch)
        figures = published.get(name.removeprefix("tf_"), (None, None, None))
        rows.append(
            dict(
                model=name,
                width=arch.width,
                depth=arch.depth,
                resolution=arch.resolution,
                dropout=arch.dropout,
                params=params,
                macs=macs,
                paper_params_m=figures[0],
                paper_macs_b=figures[1],
                paper_top1=figures[2],
            )  # fmt: skip
        )
    return rows
