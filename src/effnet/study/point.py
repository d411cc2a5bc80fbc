"""One network of a study: which experiment line it belongs to, how it was scaled, its cost."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from effnet.arch import Architecture


@dataclass(frozen=True)
class Point:
    """One network of the study: which experiment line it belongs to and how it was scaled."""

    group: str  # "fig3" | "fig4" | "table7" | "family"
    method: str  # the line it is drawn on: width, depth, resolution, compound, baseline, d2-r1.3
    depth: float  # multipliers relative to the study's baseline
    width: float
    resolution_mult: float  # the paper's r; the pixels are arch.resolution
    arch: Architecture
    macs: int  # multiply-adds of one image with the study's head and input channels
    target: float | None = None  # Table 7: the multiply-add target it was fitted to
    same_as: str | None = None  # key of an earlier point with the identical network

    @property
    def key(self) -> str:
        """Run folder name: the same architecture gets the same key wherever it appears."""
        return self.same_as or f"d{self.depth:.4g}-w{self.width:.4g}-r{self.arch.resolution}"

    @property
    def relative_error(self) -> float | None:
        return None if self.target is None else (self.macs - self.target) / self.target

    def to_dict(self) -> dict[str, Any]:
        return dict(
            key=self.key, group=self.group, method=self.method, depth=self.depth,
            width=self.width, resolution_mult=self.resolution_mult,
            resolution=self.arch.resolution, macs=self.macs, target=self.target,
            relative_error=self.relative_error, model=self.arch.name,
        )  # fmt: skip


@functools.lru_cache(maxsize=4096)
def macs(arch: Architecture, num_classes: int = 1000, in_chans: int = 3) -> int:
    """Multiply-adds of one image with the study's head (see ``effnet.profile``)."""
    # torch: this module's data and checks load without it
    from effnet.profile import arch_macs

    return arch_macs(arch, num_classes, in_chans)
