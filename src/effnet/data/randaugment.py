"""RandAugment (Cubuk et al. 2020) on float batches, the operations drawn per image.

Why not kornia's ``RandAugment``: it draws its ``n`` operations once per call, so a whole
batch is, say, inverted together and batch norm sees a batch from another distribution
every few steps; and it needs RGB input. Here each image draws ``num_ops`` operations
(with replacement, as in the TF EfficientNet and timm code); every operation is a few
vectorised tensor ops run once per round on the images that drew it, at about kornia's
speed on this CPU (and on grey images without tripling them to RGB).

Magnitude is on the 0-10 scale of the TF EfficientNet code (``rand-m9-n2``); ranges follow
it: rotate 30 deg, shear 0.3, translate 0.45 of the side (timm's relative form), colour /
contrast / brightness / sharpness factor 0.1 + 1.8 m/10, solarize threshold m/10, solarize-add
0.43 m/10. Posterize keeps 8 - int(0.4 m) bits (TF's "keep int(0.4 m) bits" erases
images at low magnitude). Geometric operations fill with 0 (black) and rotation/shear/
translation signs are random per image.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from effnet.errors import EffnetError

MAX_MAGNITUDE = 10.0
Op = Callable[[torch.Tensor, float], torch.Tensor]


def _blend(degenerate: torch.Tensor, x: torch.Tensor, factor: float) -> torch.Tensor:
    return (degenerate + factor * (x - degenerate)).clamp_(0.0, 1.0)


def _grey(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    w = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype)[:, None, None]
    return (x[:, :3] * w).sum(1, keepdim=True)


def _signs(n: int, device: torch.device) -> torch.Tensor:
    return torch.where(torch.rand(n, device=device) < 0.5, -1.0, 1.0)


def _centred(matrix: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """affine_grid's theta for a per-image 2x2 ``matrix`` in pixel units about the centre."""
    to_norm = torch.tensor([[2.0 / w, 0.0], [0.0, 2.0 / h]], device=matrix.device)
    from_norm = torch.tensor([[w / 2.0, 0.0], [0.0, h / 2.0]], device=matrix.device)
    theta = torch.zeros(matrix.shape[0], 2, 3, device=matrix.device)
    theta[:, :, :2] = to_norm @ matrix @ from_norm
    return theta


def warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Resample each image through its own affine ``theta``; outside pixels are 0."""
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def rotate(n: int, m: float, h: int, w: int, device: torch.device) -> torch.Tensor:
    angle = math.radians(30.0 * m / MAX_MAGNITUDE) * _signs(n, device)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rows = [torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)]
    return _centred(torch.stack(rows, 1), h, w)


def _shear(n: int, m: float, h: int, w: int, device: torch.device, row: int) -> torch.Tensor:
    matrix = torch.eye(2, device=device).repeat(n, 1, 1)
    matrix[:, row, 1 - row] = 0.3 * m / MAX_MAGNITUDE * _signs(n, device)
    return _centred(matrix, h, w)


def shear_x(n: int, m: float, h: int, w: int, device: torch.device) -> torch.Tensor:
    return _shear(n, m, h, w, device, 0)


def shear_y(n: int, m: float, h: int, w: int, device: torch.device) -> torch.Tensor:
    return _shear(n, m, h, w, device, 1)


def _translate(n: int, m: float, device: torch.device, axis: int) -> torch.Tensor:
    """Shift by 0.45 m/10 of the side (in normalised coordinates the side is 2)."""
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, axis, 2] = 2.0 * 0.45 * m / MAX_MAGNITUDE * _signs(n, device)
    return theta


def translate_x(n: int, m: float, h: int, w: int, device: torch.device) -> torch.Tensor:
    return _translate(n, m, device, 0)


def translate_y(n: int, m: float, h: int, w: int, device: torch.device) -> torch.Tensor:
    return _translate(n, m, device, 1)


def auto_contrast(x: torch.Tensor, m: float) -> torch.Tensor:
    lo = x.amin((2, 3), keepdim=True)
    hi = x.amax((2, 3), keepdim=True)
    span = hi - lo
    return torch.where(span > 0, (x - lo) / span.clamp_min(1e-12), x)


def equalize(x: torch.Tensor, m: float) -> torch.Tensor:
    """PIL's ImageOps.equalize per image and channel, on 256 levels."""
    n, c, h, w = x.shape
    q = (x * 255.0).round_().long().clamp_(0, 255).view(n * c, h * w)
    hist = torch.zeros(n * c, 256, device=x.device).scatter_add_(
        1, q, torch.ones_like(q, dtype=torch.float)
    )
    last = torch.where(hist > 0, torch.arange(256, device=x.device), -1).amax(1, keepdim=True)
    step = torch.div(hist.sum(1, keepdim=True) - hist.gather(1, last), 255, rounding_mode="floor")
    before = hist.cumsum(1) - hist
    lut = torch.div(
        before + torch.div(step, 2, rounding_mode="floor"), step.clamp_min(1), rounding_mode="floor"
    )
    lut = torch.where(
        step > 0, lut.clamp_(0, 255), torch.arange(256, device=x.device, dtype=torch.float)
    )
    return (lut.gather(1, q) / 255.0).view(n, c, h, w)


def invert(x: torch.Tensor, m: float) -> torch.Tensor:
    return 1.0 - x


def posterize(x: torch.Tensor, m: float) -> torch.Tensor:
    shift = 2 ** int(0.4 * m)
    return torch.div((x * 255.0).round_(), shift, rounding_mode="floor") * (shift / 255.0)


def solarize(x: torch.Tensor, m: float) -> torch.Tensor:
    return torch.where(x >= m / MAX_MAGNITUDE, 1.0 - x, x)


def solarize_add(x: torch.Tensor, m: float) -> torch.Tensor:
    return torch.where(x < 0.5, (x + 0.43 * m / MAX_MAGNITUDE).clamp_(0.0, 1.0), x)


def _factor(m: float) -> float:
    return 0.1 + 1.8 * m / MAX_MAGNITUDE


def color(x: torch.Tensor, m: float) -> torch.Tensor:
    return _blend(_grey(x), x, _factor(m))


def contrast(x: torch.Tensor, m: float) -> torch.Tensor:
    return _blend(_grey(x).mean((1, 2, 3), keepdim=True), x, _factor(m))


def brightness(x: torch.Tensor, m: float) -> torch.Tensor:
    return _blend(torch.zeros_like(x), x, _factor(m))


def sharpness(x: torch.Tensor, m: float) -> torch.Tensor:
    """PIL's SMOOTH kernel as the degenerate image; border pixels keep their values."""
    c = x.shape[1]
    kernel = torch.ones(3, 3, device=x.device)
    kernel[1, 1] = 5.0
    kernel = (kernel / 13.0).expand(c, 1, 3, 3)
    smooth = x.clone()
    smooth[..., 1:-1, 1:-1] = F.conv2d(x, kernel, groups=c)
    return _blend(smooth, x, _factor(m))


Theta = Callable[[int, float, int, int, torch.device], torch.Tensor]
GEOMETRIC: dict[str, Theta] = {
    "rotate": rotate,
    "shear_x": shear_x,
    "shear_y": shear_y,
    "translate_x": translate_x,
    "translate_y": translate_y,
}
PIXEL: dict[str, Op] = {
    "auto_contrast": auto_contrast,
    "equalize": equalize,
    "invert": invert,
    "posterize": posterize,
    "solarize": solarize,
    "solarize_add": solarize_add,
    "color": color,
    "contrast": contrast,
    "brightness": brightness,
    "sharpness": sharpness,
}


def _geometric_op(name: str) -> Op:
    def op(x: torch.Tensor, m: float) -> torch.Tensor:
        return warp(x, GEOMETRIC[name](x.shape[0], m, x.shape[2], x.shape[3], x.device))

    return op


OPS: dict[str, Op] = {**PIXEL, **{name: _geometric_op(name) for name in GEOMETRIC}}


class RandAugment(nn.Module):
    """``num_ops`` operations per image at ``magnitude`` (0-10), on float [B, C, H, W] in [0, 1].

    Each round sorts the batch by the drawn operation, runs every pixel operation once on
    its contiguous slice and all geometric ones as a single warp with per-image matrices,
    then puts the images back in place: a fixed, small number of kernels per round.
    """

    def __init__(
        self, num_ops: int = 2, magnitude: float = 9.0, ops: tuple[str, ...] | None = None
    ) -> None:
        super().__init__()
        if num_ops < 1:
            raise EffnetError(f"randaugment needs at least 1 operation, got {num_ops}")
        if not 0 <= magnitude <= MAX_MAGNITUDE:
            raise EffnetError(f"randaugment magnitude must be in [0, 10], got {magnitude}")
        chosen = tuple(ops) if ops is not None else tuple(OPS)
        unknown = [n for n in chosen if n not in OPS]
        if unknown or not chosen:
            raise EffnetError(f"unknown randaugment operation(s) {unknown}; known: {list(OPS)}")
        self.num_ops = num_ops
        self.magnitude = float(magnitude)
        # pixel operations first, so the geometric ones form one slice after sorting
        self.names = tuple(n for n in chosen if n in PIXEL) + tuple(
            n for n in chosen if n in GEOMETRIC
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.num_ops):
            x = self._round(x)
        return x

    def _round(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        m = self.magnitude
        choice = torch.randint(len(self.names), (n,), device=x.device)
        order = torch.argsort(choice, stable=True)
        counts = torch.bincount(choice, minlength=len(self.names)).tolist()
        ordered = x[order]
        parts, thetas, start, geometric_start = [], [], 0, None
        for name, count in zip(self.names, counts):
            if name in GEOMETRIC:
                geometric_start = start if geometric_start is None else geometric_start
                if count:
                    thetas.append(GEOMETRIC[name](count, m, h, w, x.device))
            elif count:
                parts.append(PIXEL[name](ordered[start : start + count], m))
            start += count
        if thetas:
            parts.append(warp(ordered[geometric_start:], torch.cat(thetas)))
        out = torch.empty_like(x)
        out[order] = torch.cat(parts)
        return out

    def extra_repr(self) -> str:
        return f"num_ops={self.num_ops}, magnitude={self.magnitude}, ops={len(self.names)}"
