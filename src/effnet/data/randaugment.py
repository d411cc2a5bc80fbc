"""RandAugment with the operations drawn per image, built from kornia's operations.

kornia's ``RandAugment`` draws its ``n`` operations once per call, so a whole batch is,
say, inverted together; batch norm then sees a batch from a different distribution every
few steps. Here every image draws its own operations (with replacement, as timm and the
TF EfficientNet code do) and each operation runs once per round on the images that drew it.
Magnitude is on the 0-10 scale of the TF EfficientNet and timm code (``rand-m9-n2``).
"""

from __future__ import annotations

import torch
from kornia.augmentation.auto import RandAugment as _KorniaRandAugment
from kornia.augmentation.auto.rand_augment.rand_augment import default_policy
from torch import nn

from effnet.errors import EffnetError

MAX_MAGNITUDE = 10.0  # TF EfficientNet `_MAX_LEVEL`; kornia's scale is 0-30


class RandAugment(nn.Module):
    """``num_ops`` operations per image, each at ``magnitude`` (0-10), on float RGB in [0, 1]."""

    def __init__(self, num_ops: int = 2, magnitude: float = 9.0) -> None:
        super().__init__()
        if num_ops < 1:
            raise EffnetError(f"randaugment needs at least 1 operation, got {num_ops}")
        if not 0 <= magnitude <= MAX_MAGNITUDE:
            raise EffnetError(f"randaugment magnitude must be in [0, 10], got {magnitude}")
        kornia_m = min(max(magnitude * 3.0, 1e-3), 30.0 - 1e-3)
        self.num_ops = num_ops
        self.magnitude = magnitude
        self.ops = nn.ModuleList(
            _KorniaRandAugment(1, kornia_m, policy=[sub]) for sub in default_policy
        )
        self.names = [sub[0][0] for sub in default_policy]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.num_ops):
            choice = torch.randint(len(self.ops), (x.shape[0],), device=x.device)
            out = x.clone()
            for k in torch.unique(choice).tolist():
                idx = torch.nonzero(choice == k).squeeze(1)
                out[idx] = self.ops[k](x[idx]).to(x.dtype)
            x = out
        return x

    def extra_repr(self) -> str:
        return f"num_ops={self.num_ops}, magnitude={self.magnitude}"
