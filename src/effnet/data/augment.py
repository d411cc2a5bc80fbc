"""Resize, normalise and augment whole uint8 batches as tensors, on the model's device.

Decoding is the only per-image CPU work; everything here runs batched (on the GPU when
there is one), so data preparation does not bottleneck the accelerator. Random draws use
torch's global RNG, so a checkpointed RNG state replays the same augmentations on resume.

The crop is declared (``crop``: random-resized, pad-and-crop or none) and drawn in the
source's pixels, with as many random numbers whatever the output side; then one resampler,
the same in train and eval (the model's interpolation, antialiased when it shrinks), takes
the crop to the output side. Two models that differ only in resolution therefore see the
same crops of the same images in the same order under one seed. Flip, RandAugment and
random erasing follow at the output side (``docs/training.md``).

``crop="auto"`` is the rule of runs made before 2026-12-08, kept so they resume as they
started: a random-resized crop of scale (0.35, 1) drawn at the output side (bilinear,
no antialiasing) when the source is larger than the model's resolution, pad-and-crop
otherwise. New recipes do not use it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from kornia.augmentation import RandomErasing, RandomResizedCrop
from torch import nn

from effnet.data.augmentation import CROPS
from effnet.data.randaugment import RandAugment
from effnet.errors import EffnetError

_INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


class BatchTransform(nn.Module):
    """uint8 [B, C, H, W] in, normalised float [B, C, resolution, resolution] out.

    Train mode: the ``crop`` in source pixels (``"resized"``: area ``crop_scale`` of the
    image at aspect ratio in ``crop_ratio``, as torchvision's RandomResizedCrop draws it;
    ``"pad"``: zero-pad by ``crop_padding`` of the side and crop back; ``"none"``), resized
    to the output side, then horizontal flip, RandAugment ``(num_ops, magnitude 0-10)``
    drawn per image, and random erasing with probability ``random_erasing``. Eval mode: a
    centre crop of ``crop_pct``, resized by the same resampler.
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
        crop: str = "pad",
        crop_scale: tuple[float, float] = (0.08, 1.0),
        crop_ratio: tuple[float, float] = (3 / 4, 4 / 3),
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
        if crop not in CROPS:
            raise EffnetError(f"crop {crop!r} is not one of {CROPS[:3]}")
        self.crop = crop
        self.crop_scale = (float(crop_scale[0]), float(crop_scale[1]))
        self.log_ratio = (math.log(crop_ratio[0]), math.log(crop_ratio[1]))
        self.resolution = resolution
        self.train(train)
        self.hflip = hflip
        self.crop_padding = crop_padding
        self.crop_pct = crop_pct
        self.interpolation = interpolation
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32), persistent=False)
        self.randaugment = RandAugment(*randaugment) if randaugment else None
        if crop == "auto":
            self.resized_crop = RandomResizedCrop((resolution, resolution), scale=(0.35, 1.0))
        self.erasing = RandomErasing(p=random_erasing) if random_erasing > 0 else None
        self._stream: dict[str, torch.Tensor] | None = None  # None: the global RNG

    # -- its own random stream: the draws do not depend on what else uses the global RNG
    # (the model's drop path and dropout, which differ between architectures)
    def use_own_stream(self, seed: int) -> None:
        """Draw train-mode augmentations from a stream of their own, seeded by ``seed``."""
        self._stream = {"seed": torch.tensor(seed)}

    def stream_state(self) -> dict[str, torch.Tensor] | None:
        """The own stream's state (for a checkpoint), or None when there is none."""
        return None if self._stream is None else dict(self._stream)

    def load_stream_state(self, state: dict[str, torch.Tensor] | None) -> None:
        if state is not None:
            self._stream = dict(state)

    @contextlib.contextmanager
    def _own_stream(self, device: torch.device) -> Iterator[None]:
        if self._stream is None:
            yield
            return
        cuda = device.type == "cuda"
        key = f"cuda:{device.index or 0}" if cuda else "cpu"
        if key not in self._stream:  # first use on this device: seeded
            g = torch.Generator(device=device).manual_seed(int(self._stream["seed"]))
            self._stream[key] = g.get_state()
        saved = torch.cuda.get_rng_state(device) if cuda else torch.get_rng_state()
        set_state = (lambda t: torch.cuda.set_rng_state(t, device)) if cuda else torch.set_rng_state
        set_state(self._stream[key])
        try:
            yield
        finally:
            self._stream[key] = torch.cuda.get_rng_state(device) if cuda else torch.get_rng_state()
            set_state(saved)

    def forward(self, images: torch.Tensor, side: int | None = None) -> torch.Tensor:
        """The batch at ``side`` x ``side`` px (default: ``resolution``; progressive resizing
        trains at smaller sides first)."""
        if images.dim() != 4:
            raise EffnetError(f"transform expects a [B, C, H, W] batch, got {tuple(images.shape)}")
        side = side or self.resolution
        x = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
        if not self.training:
            return self._normalize(self._eval_view(x, side)).contiguous()
        with self._own_stream(x.device):
            x = self._normalize(self._augment(x, side))
            if self.erasing is not None:
                x = self.erasing(x)
        return x.contiguous()

    def _augment(self, x: torch.Tensor, side: int) -> torch.Tensor:
        if self.crop == "auto":
            return self._augment_before_2026_12_08(x, side)
        if self.crop == "resized":
            x = self._resized_crops(x, side)
        else:
            if self.crop == "pad" and self.crop_padding > 0:
                x = pad_and_crop(x, round(self.crop_padding * max(x.shape[-2:])))
            x = self._resize(x, side)
        x = self._flip(x)
        return self.randaugment(x) if self.randaugment is not None else x

    def _resized_crops(self, x: torch.Tensor, side: int) -> torch.Tensor:
        """Each image's random-resized crop box, drawn in source pixels, resized to ``side``
        (images sharing a box size are resized together)."""
        boxes = resized_crop_boxes(x.shape[0], *x.shape[-2:], self.crop_scale, self.log_ratio,
                                   x.device)  # fmt: skip
        out = x.new_empty(x.shape[0], x.shape[1], side, side)
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, (_, _, h, w) in enumerate(boxes.tolist()):
            by_size.setdefault((h, w), []).append(i)
        for (h, w), idx in by_size.items():
            index = torch.tensor(idx, device=x.device)
            tops, lefts = boxes[index, 0], boxes[index, 1]
            rows = tops[:, None] + torch.arange(h, device=x.device)
            cols = lefts[:, None] + torch.arange(w, device=x.device)
            chans = torch.arange(x.shape[1], device=x.device)
            crops = x[index[:, None, None, None], chans[None, :, None, None],
                      rows[:, None, :, None], cols[:, None, None, :]]  # fmt: skip
            out[index] = self._resize(crops, side)
        return out

    def _flip(self, x: torch.Tensor) -> torch.Tensor:
        if not self.hflip:
            return x
        flip = torch.rand(x.shape[0], device=x.device) < 0.5
        return torch.where(flip[:, None, None, None], x.flip(-1), x)

    def _augment_before_2026_12_08(self, x: torch.Tensor, side: int) -> torch.Tensor:
        if max(x.shape[-2:]) > self.resolution:
            x = self.resized_crop(x)
        elif self.crop_padding > 0:
            x = pad_and_crop(x, round(self.crop_padding * max(x.shape[-2:])))
        x = self._flip(x)
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


def resized_crop_boxes(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    log_ratio: tuple[float, float],
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """[n, 4] integer boxes (top, left, h, w) as torchvision's RandomResizedCrop draws them:
    area uniform in ``scale`` x the image's, log aspect ratio uniform in ``log_ratio``; the
    first of 10 tries that fits, else the whole image clipped to the ratio range. The
    random numbers drawn depend only on ``n``, never on the output size."""
    area = height * width
    tries = 10
    target = area * torch.empty(n, tries, device=device).uniform_(*scale)
    ratio = torch.exp(torch.empty(n, tries, device=device).uniform_(*log_ratio))
    w = torch.sqrt(target * ratio).round().long()
    h = torch.sqrt(target / ratio).round().long()
    fits = (w > 0) & (h > 0) & (w <= width) & (h <= height)
    first = torch.where(fits.any(1), fits.int().argmax(1), -1)
    u = torch.rand(n, 2, device=device)  # the box's place, drawn for every image
    lo, hi = math.exp(log_ratio[0]), math.exp(log_ratio[1])
    r0 = width / height  # fallback: the centre, at the nearest allowed ratio
    fw, fh = (width, round(width / lo)) if r0 < lo else (
        (round(height * hi), height) if r0 > hi else (width, height))  # fmt: skip
    rows = torch.arange(n, device=device)
    bh = torch.where(first >= 0, h[rows, first.clamp(min=0)], fh)
    bw = torch.where(first >= 0, w[rows, first.clamp(min=0)], fw)
    top = torch.where(first >= 0, (u[:, 0] * (height - bh + 1)).long(), (height - fh) // 2)
    left = torch.where(first >= 0, (u[:, 1] * (width - bw + 1)).long(), (width - fw) // 2)
    return torch.stack([top.clamp(max=height - 1), left.clamp(max=width - 1), bh, bw], 1)


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


def arm_agreement(
    images: torch.Tensor,
    side_a: int,
    side_b: int,
    seed: int = 0,
    at: str = "larger",
    **transform: object,
) -> float:
    """How alike two models that differ only in resolution see their training batches: the
    correlation of ``images`` augmented at ``side_a`` and at ``side_b`` under one seed, both
    resized to the ``at`` side ("larger", or "smaller": only the detail both sides hold, so
    sides far apart compare their augmentation, not their resolution). ``transform``:
    BatchTransform's augmentation arguments."""
    big = max(side_a, side_b) if at == "larger" else min(side_a, side_b)
    views = []
    for side in (side_a, side_b):
        t = BatchTransform(side, (0.0,), (1.0,), train=True, **transform)  # type: ignore[arg-type]
        t.use_own_stream(seed)
        views.append(t._resize(t(images), big).flatten().double())
    a, b = (v - v.mean() for v in views)
    return float((a @ b) / (a.norm() * b.norm()).clamp_min(1e-12))
