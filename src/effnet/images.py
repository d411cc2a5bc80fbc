"""Images in: Pillow loading and the paper's eval preprocessing, read from the model's config.

The eval transform (resolution, crop fraction, interpolation, mean/std) belongs to the
model: it comes from its :class:`~effnet.arch.Architecture`, never from a global. The
transform is the one every public EfficientNet uses: resize the shorter side to
``resolution / crop_pct``, center-crop ``resolution`` x ``resolution``, scale to [0, 1],
normalise per channel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from effnet.arch import INTERPOLATIONS, preprocessing
from effnet.errors import EffnetError

_RESAMPLE = {name: Image.Resampling[name.upper()] for name in INTERPOLATIONS}


@dataclass(frozen=True)
class Preprocess:
    """The eval transform of one model."""

    resolution: int
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    in_chans: int = 3

    def __post_init__(self) -> None:
        if self.in_chans not in (1, 3):
            raise EffnetError(f"images can feed 1 or 3 input channels, not {self.in_chans}")
        if self.interpolation not in _RESAMPLE:
            raise EffnetError(f"unknown interpolation {self.interpolation!r}")
        if not 0 < self.crop_pct <= 1:
            raise EffnetError(f"crop_pct must be in (0, 1], got {self.crop_pct}")
        if len(self.mean) != len(self.std) or not all(s > 0 for s in self.std):
            raise EffnetError(f"mean/std must match in length, std positive: {self.std}")
        if self.resolution < 1:
            raise EffnetError(f"resolution must be positive, got {self.resolution}")

    @classmethod
    def of(cls, model: object) -> Preprocess:
        """The transform a model's architecture asks for (``model.arch``, ``model.in_chans``)."""
        arch = getattr(model, "arch", None)
        if arch is None:
            raise EffnetError("the model carries no architecture, so no preprocessing is known")
        fields = preprocessing(arch)
        fields["mean"], fields["std"] = tuple(fields["mean"]), tuple(fields["std"])
        return cls(**fields, in_chans=getattr(model, "in_chans", 3))

    @property
    def mode(self) -> str:
        return "L" if self.in_chans == 1 else "RGB"

    @property
    def resize_to(self) -> int:
        return int(math.floor(self.resolution / self.crop_pct))

    def channel_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean/std per input channel; one channel uses the average of three given."""
        mean, std = np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)
        if self.in_chans == 1 and mean.size != 1:
            mean, std = mean.mean(keepdims=True), std.mean(keepdims=True)
        return mean, std


# An image file may claim any size in a few bytes: a 109 KB PNG of 30000x30000 pixels, or
# 2 KB of 1x1,000,000 whose shorter side resized to 256 is 65 billion pixels.
MAX_PIXELS = 8192 * 8192
MAX_ASPECT = 100  # longer side / shorter side


def check_image_size(size: tuple[int, int], path: str | Path) -> None:
    """Refuse, from the header's size and before decoding, what would exhaust memory."""
    w, h = size
    if w < 1 or h < 1 or w * h > MAX_PIXELS:
        raise EffnetError(f"{path}: {w}x{h} pixels is too large to decode (max {MAX_PIXELS:,})")
    if max(w, h) > MAX_ASPECT * min(w, h):
        raise EffnetError(
            f"{path}: {w}x{h} pixels is too elongated to decode (aspect ratio over {MAX_ASPECT})"
        )


def open_image(path: str | Path, mode: str = "RGB") -> Image.Image:
    """The image at ``path`` in ``mode``; any Pillow mode (P, LA, RGBA, CMYK, I;16...) works.

    Transparent pixels are put on white before dropping alpha, as a viewer would show them.
    Raises EffnetError naming the file when it is missing or not a readable image.
    """
    p = Path(path)
    if p.is_dir():
        raise EffnetError(f"{p}: is a folder, not an image file")
    if not p.is_file():
        raise EffnetError(f"{p}: no such image file")
    try:
        with Image.open(p) as img:
            check_image_size(img.size, p)
            img.load()
            return to_mode(img, mode)
    except (
        UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError,
        MemoryError,
    ) as e:  # fmt: skip
        raise EffnetError(f"{p}: not a readable image ({type(e).__name__}: {e})") from None


def to_mode(img: Image.Image, mode: str) -> Image.Image:
    """An opened image as a user's viewer shows it, in ``mode`` ("RGB" or "L"): turned as
    its EXIF orientation says (a phone photo marked "rotate 90°"), 16-bit and 32-bit
    integer pixels scaled by their bit depth (65535 is white; never stretched per image),
    float pixels read as [0, 1] (or [0, 255] when above 1), transparency on white, palette
    and CMYK converted by Pillow. Every reader (predict, cam, eval, ImageFolder) uses this."""
    img = ImageOps.exif_transpose(img) or img
    if img.mode in ("I", "I;16", "I;16B", "I;16L"):
        a = np.asarray(img, dtype=np.float64)
        wide = img.mode == "I" and a.size and a.max() > 65535  # 32-bit data, not 16-bit in I
        a = a / (16843009.0 if wide else 257.0)  # (2**32 - 1) / 255, (2**16 - 1) / 255
        img = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        a = np.asarray(img, dtype=np.float64)
        a = a * 255.0 if a.size and np.nanmax(a) <= 1.0 else a
        img = Image.fromarray(np.clip(np.nan_to_num(np.rint(a)), 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, rgba)
    return img.convert(mode)


def center_crop(img: Image.Image, pre: Preprocess) -> Image.Image:
    """Resize the shorter side to ``resolution / crop_pct``, then center-crop ``resolution``,
    with torchvision's arithmetic (``Resize(int)``: the longer side truncated;
    ``CenterCrop``: offsets rounded), which timm's eval transform is: the same pixels."""
    w, h = img.size
    short = pre.resize_to
    if w <= h:
        size = (short, int(short * h / w))
    else:
        size = (int(short * w / h), short)
    img = img.resize(size, _RESAMPLE[pre.interpolation])
    left = int(round((size[0] - pre.resolution) / 2.0))
    top = int(round((size[1] - pre.resolution) / 2.0))
    return img.crop((left, top, left + pre.resolution, top + pre.resolution))


def to_tensor(img: Image.Image, pre: Preprocess) -> torch.Tensor:
    """A (C, H, W) float tensor, scaled to [0, 1] and normalised with the model's mean/std."""
    a = np.asarray(img.convert(pre.mode), dtype=np.float32) / 255.0
    if a.ndim == 2:
        a = a[:, :, None]
    mean, std = pre.channel_stats()
    a = (a - mean) / std
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


def load(path: str | Path, pre: Preprocess) -> tuple[torch.Tensor, Image.Image]:
    """One image as the model's input tensor, plus the cropped picture (for overlays)."""
    crop = center_crop(open_image(path, pre.mode), pre)
    return to_tensor(crop, pre), crop


@dataclass(frozen=True)
class Batch:
    """The images that could be read (in order) and the ones that could not, with why."""

    tensor: torch.Tensor  # (N, C, H, W); N may be 0
    paths: tuple[str, ...]
    crops: tuple[Image.Image, ...]
    failed: tuple[tuple[str, str], ...]  # (path, message)


def load_batch(paths: Sequence[str | Path], pre: Preprocess) -> Batch:
    """Load every readable image; record (not raise) each missing or corrupt one."""
    tensors, ok, crops, failed = [], [], [], []
    for p in paths:
        try:
            t, crop = load(p, pre)
        except EffnetError as e:
            failed.append((str(p), str(e)))
            continue
        tensors.append(t)
        ok.append(str(p))
        crops.append(crop)
    shape = (0, pre.in_chans, pre.resolution, pre.resolution)
    tensor = torch.stack(tensors) if tensors else torch.empty(shape)
    return Batch(tensor, tuple(ok), tuple(crops), tuple(failed))
