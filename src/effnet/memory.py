"""Will it fit? Memory of a model estimated from its description, before anything is allocated.

A description can ask for far more than a machine has (a depth multiplier of 1e4, a width
of 1e6, a 100,000-pixel input): building it would allocate until the kernel kills the
process. The estimate builds only the first block of each stage (which strides) and one
repeat on the meta device, so it costs milliseconds whatever the depth, and multiplies by
the stage's layer count. It counts what a build and one image in inference need:
parameters and buffers (float32), the Python objects of every block, and the largest
activations. It is an estimate for refusing the impossible, not a budget planner.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from effnet.arch import Architecture, feature_size
from effnet.errors import EffnetError

BYTES_PER_BLOCK = 64 * 1024  # Python objects of one block's modules (an MBConv: ~46 KB)
BYTES_PER_VALUE = 4  # float32


@dataclass(frozen=True)
class Estimate:
    """What a model of an architecture needs, at batch size 1."""

    values: int  # parameters and buffers
    blocks: int
    activation_values: int  # the largest live tensors of one image in inference (approx.)
    resolution: int

    @property
    def bytes(self) -> int:
        return (
            self.values + self.activation_values
        ) * BYTES_PER_VALUE + self.blocks * BYTES_PER_BLOCK


def machine_memory() -> int:
    """Physical memory of this machine in bytes (no psutil: sysconf)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # not POSIX: do not refuse anything
        return 2**62


def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.0f} MiB"


@functools.lru_cache(maxsize=256)
def _block(arch: Architecture, stage_index: int, cin: int, stride: int, size: int) -> tuple:
    """(values, largest tensor) of one block of a stage, built and run on the meta device."""
    # torch: this module's data and checks load without it
    import torch
    from torch import nn

    from effnet.blocks import make_block

    s = arch.stages[stage_index]
    largest = cin * size * size

    def hook(m: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        nonlocal largest
        if isinstance(out, torch.Tensor):
            largest = max(largest, out.numel())

    with torch.device("meta"):
        block = make_block(arch, s, cin, stride, 0.0).eval()
    values = sum(t.numel() for t in (*block.parameters(), *block.buffers()))
    handles = [m.register_forward_hook(hook) for m in block.modules()]
    with torch.no_grad():
        block(torch.empty(1, cin, size, size, device="meta"))
    for h in handles:
        h.remove()
    return values, largest


def estimate(
    arch: Architecture, num_classes: int = 1000, in_chans: int = 3, resolution: int | None = None
) -> Estimate:
    """Parameters, blocks and activations of ``arch`` at ``resolution`` (default its own)."""
    res = resolution or arch.resolution
    c = arch.stem.out_channels
    values = in_chans * c * arch.stem.kernel**2 + 5 * c  # conv + batch norm
    size = feature_size(res, arch.stem.stride)
    largest = max(in_chans * res * res, c * size * size)
    if arch.stem.pool:
        size = feature_size(size, 2)
    cin = c
    for i, s in enumerate(arch.stages):
        first_values, first_largest = _block(arch, i, cin, s.stride, size)
        size, cin = feature_size(size, s.stride), s.out_channels
        rest_values, rest_largest = _block(arch, i, cin, 1, size) if s.layers > 1 else (0, 0)
        values += first_values + (s.layers - 1) * rest_values
        largest = max(largest, first_largest, rest_largest)
    features = arch.head.out_channels or cin
    if arch.head.out_channels:
        values += cin * features + 5 * features
        largest = max(largest, features * size * size)
    values += features * num_classes + num_classes
    return Estimate(values, arch.num_blocks, 3 * largest, res)


def check_fits(
    arch: Architecture,
    num_classes: int = 1000,
    in_chans: int = 3,
    resolution: int | None = None,
    available: int | None = None,
) -> Estimate:
    """``estimate``, or a one-line EffnetError when it exceeds this machine's memory."""
    have = machine_memory() if available is None else available
    res = resolution or arch.resolution
    # the blocks' Python objects alone: refuse a million-block model without building any
    if arch.num_blocks * BYTES_PER_BLOCK > have:
        raise EffnetError(
            f"{arch.name}: {arch.num_blocks:,} blocks need about "
            f"{_gib(arch.num_blocks * BYTES_PER_BLOCK)} just to build; "
            f"this machine has {_gib(have)}"
        )
    try:
        est = estimate(arch, num_classes, in_chans, res)
    except (RuntimeError, OverflowError, ValueError, MemoryError) as e:  # int64 sizes overflow
        raise EffnetError(f"{arch.name} at {res}x{res} px is too large to build ({e})") from None
    if est.bytes > have:
        raise EffnetError(
            f"{arch.name} at {res}x{res} px needs about {_gib(est.bytes)} "
            f"({est.values:,} weights, {_gib(est.activation_values * BYTES_PER_VALUE)} of "
            f"activations for one image); this machine has {_gib(have)}"
        )
    return est


def check_build(arch: Architecture, num_classes: int, in_chans: int) -> None:
    """The check ``effnet.model.build`` runs: a meta build needs only its blocks' objects."""
    # torch: this module's data and checks load without it
    import torch

    if torch.get_default_device().type == "meta":
        have = machine_memory()
        if arch.num_blocks * BYTES_PER_BLOCK > have:
            check_fits(arch, num_classes, in_chans, available=have)
        return
    check_fits(arch, num_classes, in_chans)
