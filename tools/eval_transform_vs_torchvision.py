"""Our eval crop against torchvision's (timm's eval transform), pixel for pixel: prints the
largest absolute difference of the normalised tensors as JSON. Run in the reference env
with effnet's src on sys.path (tests/test_pretrained_reference.py does)."""

import json
import math

import numpy as np
from PIL import Image
from torchvision import transforms as T

from effnet.images import Preprocess, center_crop, to_tensor

SIZES = [(500, 375), (375, 500), (333, 257), (640, 427), (256, 256), (1000, 101), (231, 999)]
CONFIGS = [(224, 0.875, "bicubic"), (300, 0.904, "bicubic"), (384, 1.0, "bilinear")]

rng = np.random.default_rng(0)
worst = 0.0
for w, h in SIZES:
    img = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    for res, crop, interp in CONFIGS:
        pre = Preprocess(res, crop, interp)
        theirs = T.Compose([
            T.Resize(math.floor(res / crop), interpolation=T.InterpolationMode(interp)),
            T.CenterCrop(res), T.ToTensor(), T.Normalize(pre.mean, pre.std),
        ])(img)  # fmt: skip
        ours = to_tensor(center_crop(img, pre), pre)
        worst = max(worst, float((theirs - ours).abs().max()))
print(json.dumps(worst))
