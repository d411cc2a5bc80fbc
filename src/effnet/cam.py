"""Class activation maps (Zhou et al. 2016), as the paper's Figure 7 shows them.

A network that ends in global average pooling and a linear classifier scores class c as
sum_k w[c, k] * mean_xy f_k(x, y). Moving the sum inside the mean gives the map
M_c(x, y) = sum_k w[c, k] f_k(x, y): where in the image the evidence for c lies. Here f is
the last feature map (``forward_features``, before pooling), M is passed through a ReLU,
divided by its maximum and upsampled bilinearly to the input size.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from effnet.errors import EffnetError
from effnet.images import Preprocess, load_batch
from effnet.infer import class_names_for
from effnet.io import atomic_open


@dataclass(frozen=True)
class Cam:
    """One image's map (H, W) in [0, 1] at input resolution, the class it explains, its score."""

    map: np.ndarray
    class_index: int
    probability: float


def classifier_weights(model: nn.Module) -> torch.Tensor:
    """The (num_classes, num_features) weight of the final linear layer."""
    fc = getattr(model, "classifier", None)
    if not isinstance(fc, nn.Linear):
        raise EffnetError("class activation maps need a model with a linear classifier")
    return fc.weight


def class_activation_maps(
    model: nn.Module, x: torch.Tensor, class_index: int | None = None
) -> list[Cam]:
    """The CAM of each image in ``x`` (N, C, H, W) for ``class_index`` or its top class."""
    weight = classifier_weights(model)
    n_classes = weight.shape[0]
    if class_index is not None and not 0 <= class_index < n_classes:
        raise EffnetError(f"--class must be in 0..{n_classes - 1}, got {class_index}")
    model.eval()
    with torch.inference_mode():
        feats = model.forward_features(x)
        probs = model.forward_head(feats).softmax(dim=1)
        chosen = (
            torch.full((x.shape[0],), class_index, dtype=torch.long)
            if class_index is not None
            else probs.argmax(dim=1)
        )
        maps = torch.einsum("nkhw,nk->nhw", feats, weight[chosen]).relu()
        maps = F.interpolate(maps[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)
        maps = maps[:, 0]
        peak = maps.flatten(1).amax(dim=1).clamp_min(1e-12)
        maps = maps / peak[:, None, None]
    return [
        Cam(m.numpy(), int(c), float(probs[i, c]))
        for i, (m, c) in enumerate(zip(maps, chosen.tolist()))
    ]


def overlay(
    image: Image.Image, cam: np.ndarray, alpha: float = 0.5, cmap: str = "jet"
) -> Image.Image:
    """``image`` (RGB) blended with ``cam`` coloured by a matplotlib colormap."""
    # matplotlib loads only when a plot is drawn
    import matplotlib

    base = image.convert("RGB")
    if cam.shape != (base.height, base.width):
        resized = Image.fromarray(cam.astype(np.float32), "F").resize(base.size, Image.BILINEAR)
        cam = np.asarray(resized)
    colours = matplotlib.colormaps[cmap](np.clip(cam, 0.0, 1.0))[..., :3]
    heat = Image.fromarray((colours * 255).astype(np.uint8), "RGB")
    return Image.blend(base, heat, alpha)


def save_png(image: Image.Image, path: str | Path) -> Path:
    with atomic_open(path, "wb") as f:
        image.save(f, format="PNG")
    return Path(path)


def comparison_figure(
    image: Image.Image,
    panels: Sequence[tuple[str, Image.Image]],
    path: str | Path,
    title: str | None = None,
) -> Path:
    """Figure 7's layout: the original image, then one CAM overlay per model, in a row."""
    # matplotlib loads only when a plot is drawn
    from matplotlib.figure import Figure

    cols = 1 + len(panels)
    fig = Figure(figsize=(2.6 * cols, 3.0), dpi=100)
    axes = fig.subplots(1, cols, squeeze=False)[0]
    for ax, (name, img) in zip(axes, [("original image", image), *panels]):
        ax.imshow(np.asarray(img.convert("RGB")))
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png")
    return Path(path)


def output_stems(paths: list[str]) -> list[str]:
    """Output names: the file's stem, numbered (x_1, x_2) where stems repeat, never twice
    (a/x.png, b/x.png and c/x_1.png give x_2, x_3 and x_1)."""
    counts = Counter(Path(p).stem for p in paths)
    taken = {stem for stem, n in counts.items() if n == 1}
    out = []
    for p in paths:
        stem = Path(p).stem
        if counts[stem] == 1:
            out.append(stem)
            continue
        k = 1
        while f"{stem}_{k}" in taken:
            k += 1
        taken.add(f"{stem}_{k}")
        out.append(f"{stem}_{k}")
    return out


def cam_panels(
    models: list[tuple[str, nn.Module]],
    first: Any,
    class_names: list[str],
    class_index: int | None,
    opacity: float,
) -> list[list[tuple[str, Any]]]:
    """Figure 7's panels: for each image of ``first`` (a batch read with the first model's
    preprocessing), one (title, overlay) per (title, model), each model reading the images
    its own way. ``class_names`` are the first model's."""
    panels: list[list[tuple[str, Any]]] = [[] for _ in first.paths]
    for n, (title, model) in enumerate(models):
        batch = first if n == 0 else load_batch(first.paths, Preprocess.of(model))
        cams = class_activation_maps(model, batch.tensor, class_index)
        names = class_names if n == 0 else class_names_for(model, None)
        for i, (cam, crop) in enumerate(zip(cams, batch.crops)):
            label = names[cam.class_index] if cam.class_index < len(names) else ""
            caption = f"{title}\n{label} ({cam.probability:.1%})"
            panels[i].append((caption, overlay(crop, cam.map, opacity)))
    return panels
