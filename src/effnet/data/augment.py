"""Resize, normalise and augment whole uint8 batches as tensors, on the model's device.

Decoding is the only per-image CPU work; everything here runs batched (on the GPU when
there is one), so data preparation does not bottleneck the accelerator. Random draws use
torch's global RNG, so a checkpointed RNG state replays the same augmentations on resume.
Augmentation runs at the smaller of the source and the model resolution: small images
(Fashion-MNIST, 28 px) are augmented first and then upsampled; big ones are cropped first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia.augmentation import RandomErasing, RandomResizedCrop
from torch import nn

from effnet.data.randaugment import RandAugment
from effnet.errors import EffnetError

_INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


class BatchTransform(nn.Module):
    """uint8 [B, C, H, W] in, normalised float [B, C, resolution, resolution] out.

    Train mode: random crop (zero-pad by ``crop_padding`` of the side and crop back, for
    images no larger than ``resolution``; random-resized-crop for larger ones), horizontal
    flip, RandAugment ``(num_ops, magnitude 0-10)`` drawn per image, and random erasing
    with probability ``random_erasing``. Eval mode: resize (after a centre crop of
    ``crop_pct``) only.
    """

    def __init__(
        self,
        resolution: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        train: bool,
        randaugment: tuple[int, int] | None = (2, 9),
        random_erasing: float = 0.0,
        hflip: bool = True,
        crop_padding: float = 0.125,
        crop_pct: float = 1.0,
        interpolation: str = "bilinear",
    ) -> None:
        super().__init__()
        if resolution < 1:
            raise EffnetError(f"transform resolution must be positive, got {resolution}")
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise EffnetError(f"transform mean {mean} / std {std} mismatch or non-positive std")
        if not 0.0 <= random_erasing <= 1.0:
            raise EffnetError(f"random_erasing is a probability, got {random_erasing}")
        if not 0.0 < crop_pct <= 1.0:
            raise EffnetError(f"crop_pct must be in (0, 1], got {crop_pct}")
        if interpolation not in _INTERPOLATIONS:
            raise EffnetError(f"interpolation {interpolation!r} is not one of {_INTERPOLATIONS}")
        self.resolution = resolution
        self.train(train)
        self.hflip = hflip
        self.crop_padding = crop_padding
        self.crop_pct = crop_pct
        self.interpolation = interpolation
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32), persistent=False)
        self.randaugment = RandAugment(*randaugment) if randaugment else None
        self.resized_crop = RandomResizedCrop((resolution, resolution), scale=(0.35, 1.0), p=1.0)
        self.erasing = RandomErasing(p=random_erasing) if random_erasing > 0 else None

    def forward(self, images: torch.Tensor, side: int | None = None) -> torch.Tensor:
        """The batch at ``side`` x ``side`` px (default: ``resolution``; progressive resizing
        trains at smaller sides first)."""
        if images.dim() != 4:
            raise EffnetError(f"transform expects a [B, C, H, W] batch, got {tuple(images.shape)}")
        side = side or self.resolution
        x = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
        x = self._augment(x, side) if self.training else self._eval_view(x, side)
        x = self._normalize(x)
        if self.training and self.erasing is not None:
            x = self.erasing(x)
        return x.contiguous()

    def _augment(self, x: torch.Tensor, side: int) -> torch.Tensor:
        if max(x.shape[-2:]) > self.resolution:
            x = self.resized_crop(x)
        elif self.crop_padding > 0:
            x = pad_and_crop(x, round(self.crop_padding * max(x.shape[-2:])))
        if self.hflip:
            flip = torch.rand(x.shape[0], device=x.device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        if self.randaugment is not None:
            x = self.randaugment(x)
        return self._resize(x, side)

    def _eval_view(self, x: torch.Tensor, side: int) -> torch.Tensor:
        if self.crop_pct < 1.0:
            h, w = x.shape[-2:]
            ch, cw = max(1, round(h * self.crop_pct)), max(1, round(w * self.crop_pct))
            top, left = (h - ch) // 2, (w - cw) // 2
            x = x[..., top : top + ch, left : left + cw]
        return self._resize(x, side)

    def _resize(self, x: torch.Tensor, side: int) -> torch.Tensor:
        if tuple(x.shape[-2:]) == (side, side):
            return x
        antialias = self.interpolation != "nearest" and max(x.shape[-2:]) > side
        kwargs = {} if self.interpolation == "nearest" else {"align_corners": False}
        out = F.interpolate(
            x, size=(side, side), mode=self.interpolation,
            antialias=antialias, **kwargs,
        )  # fmt: skip
        return out.clamp_(0.0, 1.0) if self.interpolation == "bicubic" else out

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = channel_stats(self.mean, self.std, x.shape[1])
        return (x - mean[None, :, None, None]) / std[None, :, None, None]

    def extra_repr(self) -> str:
        mode = "train" if self.training else "eval"
        return f"resolution={self.resolution}, mode={mode}, interpolation={self.interpolation}"


def channel_stats(
    mean: torch.Tensor, std: torch.Tensor, channels: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit mean/std to the batch's channels: broadcast one value, or average RGB for grey."""
    if mean.numel() == channels:
        return mean, std
    if mean.numel() == 1:
        return mean.expand(channels), std.expand(channels)
    if channels == 1:
        return mean.mean().reshape(1), std.mean().reshape(1)
    raise EffnetError(
        f"transform has {mean.numel()}-channel mean/std for {channels}-channel images"
    )


def pad_and_crop(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Zero-pad every side by ``pad`` and take one random crop of the original size per image."""
    if pad <= 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (b,), device=x.device)
    rows = dy[:, None] + torch.arange(h, device=x.device)
    cols = dx[:, None] + torch.arange(w, device=x.device)
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
