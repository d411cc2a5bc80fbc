"""RandAugment (Cubuk et al. 2020) on float batches, the operations drawn per image.

Why not kornia's ``RandAugment``: it draws its ``n`` operations once per call, so a whole
batch is, say, inverted together and batch norm sees a batch from another distribution
every few steps; and on a small CPU its per-operation overhead cost about 1 s per
128-image batch. Here each image draws ``num_ops`` operations (with replacement, as in the
TF EfficientNet and timm code); every operation is a few vectorised tensor ops run once
per round on the images that drew it.

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


def _affine(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Warp by per-image 2x2 ``matrix`` (pixel units, about the centre); fill with 0."""
    n, _, h, w = x.shape
    to_norm = torch.tensor([[2.0 / w, 0.0], [0.0, 2.0 / h]], device=x.device)
    from_norm = torch.tensor([[w / 2.0, 0.0], [0.0, h / 2.0]], device=x.device)
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, :, :2] = to_norm @ matrix @ from_norm
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _translate(x: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Shift by (dx, dy) fractions of the side; fill with 0."""
    theta = torch.zeros(x.shape[0], 2, 3, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2], theta[:, 1, 2] = -2.0 * dx, -2.0 * dy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def rotate(x: torch.Tensor, m: float) -> torch.Tensor:
    angle = math.radians(30.0 * m / MAX_MAGNITUDE) * _signs(x.shape[0], x.device)
    cos, sin = torch.cos(angle), torch.sin(angle)
    return _affine(x, torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], 1))


def shear_x(x: torch.Tensor, m: float) -> torch.Tensor:
    matrix = torch.eye(2, device=x.device).repeat(x.shape[0], 1, 1)
    matrix[:, 0, 1] = 0.3 * m / MAX_MAGNITUDE * _signs(x.shape[0], x.device)
    return _affine(x, matrix)


def shear_y(x: torch.Tensor, m: float) -> torch.Tensor:
    matrix = torch.eye(2, device=x.device).repeat(x.shape[0], 1, 1)
    matrix[:, 1, 0] = 0.3 * m / MAX_MAGNITUDE * _signs(x.shape[0], x.device)
    return _affine(x, matrix)


def translate_x(x: torch.Tensor, m: float) -> torch.Tensor:
    shift = 0.45 * m / MAX_MAGNITUDE * _signs(x.shape[0], x.device)
    return _translate(x, shift, torch.zeros_like(shift))


def translate_y(x: torch.Tensor, m: float) -> torch.Tensor:
    shift = 0.45 * m / MAX_MAGNITUDE * _signs(x.shape[0], x.device)
    return _translate(x, torch.zeros_like(shift), shift)


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


OPS: dict[str, Op] = {
    "auto_contrast": auto_contrast,
    "equalize": equalize,
    "invert": invert,
    "rotate": rotate,
    "posterize": posterize,
    "solarize": solarize,
    "solarize_add": solarize_add,
    "color": color,
    "contrast": contrast,
    "brightness": brightness,
    "sharpness": sharpness,
    "shear_x": shear_x,
    "shear_y": shear_y,
    "translate_x": translate_x,
    "translate_y": translate_y,
}


class RandAugment(nn.Module):
    """``num_ops`` operations per image at ``magnitude`` (0-10), on float [B, C, H, W] in [0, 1]."""

    def __init__(
        self, num_ops: int = 2, magnitude: float = 9.0, ops: tuple[str, ...] | None = None
    ) -> None:
        super().__init__()
        if num_ops < 1:
            raise EffnetError(f"randaugment needs at least 1 operation, got {num_ops}")
        if not 0 <= magnitude <= MAX_MAGNITUDE:
            raise EffnetError(f"randaugment magnitude must be in [0, 10], got {magnitude}")
        names = tuple(ops) if ops is not None else tuple(OPS)
        unknown = [n for n in names if n not in OPS]
        if unknown or not names:
            raise EffnetError(f"unknown randaugment operation(s) {unknown}; known: {list(OPS)}")
        self.num_ops = num_ops
        self.magnitude = float(magnitude)
        self.names = names

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.num_ops):
            choice = torch.randint(len(self.names), (x.shape[0],), device=x.device)
            out = x.clone()
            for k in torch.unique(choice).tolist():
                idx = torch.nonzero(choice == k).squeeze(1)
                out[idx] = OPS[self.names[k]](x[idx], self.magnitude)
            x = out
        return x

    def extra_repr(self) -> str:
        return f"num_ops={self.num_ops}, magnitude={self.magnitude}, ops={len(self.names)}"
