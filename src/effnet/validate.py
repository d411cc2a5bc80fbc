"""``effnet validate``: top-1 / top-5 of a model on an ImageNet-style folder, as timm's
``validate.py`` measures it.

Each image is resized so its shorter side is ``floor(size / crop_pct)`` with the weights'
interpolation, center-cropped to ``size``, scaled to [0, 1] and normalised with the
weights' mean and std (``effnet.images``, the same arithmetic as torchvision's
``Resize`` + ``CenterCrop`` that timm uses). The weights bring all of it (their
``pretrained_cfg``); ``--image-size`` and ``--crop-pct`` override.

Labels: class folders named by ImageNet WordNet ids (``n01440764``, as ImageNet-val is
laid out) take the index of that id among the 1000 classes, so a folder of a few classes
works too; other folder names take their sorted position (timm's ``ImageFolder``), which
needs one folder per class of the model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from effnet.data.imagefolder import scan, subfolders
from effnet.errors import EffnetError
from effnet.images import Preprocess, load_batch


@dataclass(frozen=True)
class Labelled:
    samples: list[tuple[str, int]]  # (image path, class index of the model)
    unreadable: list[str]
    labels: str  # how folders became indices: "synsets" or "sorted"


def label_folder(root: str | Path, num_classes: int) -> Labelled:
    """The images under ``root``'s class folders with the model's class index of each."""
    from effnet.pretrained.table import imagenet_synsets

    root = Path(root)
    names = subfolders(root)
    if not names:
        raise EffnetError(f"{root} has no class folders (expected ROOT/CLASS/IMAGE files)")
    synsets = {s: i for i, s in enumerate(imagenet_synsets())}
    if num_classes == len(synsets) and all(n in synsets for n in names):
        index, how = {n: synsets[n] for n in names}, "synsets"
    elif len(names) == num_classes:
        index, how = {n: i for i, n in enumerate(names)}, "sorted"
    else:
        raise EffnetError(
            f"{root} has {len(names)} class folders for a model of {num_classes} classes: "
            "name them by ImageNet WordNet id (n01440764...) or give one per class"
        )
    samples, bad = scan(root, names)
    if not samples:
        raise EffnetError(f"{root} holds no readable images")
    by_folder = {i: index[n] for i, n in enumerate(names)}
    return Labelled([(p, by_folder[c]) for p, c in samples], bad, how)


def validate(
    model: nn.Module,
    root: str | Path,
    pre: Preprocess | None = None,
    batch_size: int = 32,
    limit: int | None = None,
    progress: Callable[[int, int], Any] | None = None,
) -> dict[str, Any]:
    """Top-1 and top-5 (%) of ``model`` on the folder ``root``, with each image's
    prediction; ``pre`` defaults to the model's own preprocessing."""
    pre = pre or Preprocess.of(model)
    data = label_folder(root, int(getattr(model, "num_classes", 0)))
    samples = data.samples[:limit] if limit else data.samples
    model = model.eval()
    top1 = top5 = 0
    rows, failed = [], list(data.unreadable)
    start = time.perf_counter()
    for i in range(0, len(samples), batch_size):
        chunk = samples[i : i + batch_size]
        batch = load_batch([p for p, _ in chunk], pre)
        failed += [p for p, _ in batch.failed]
        label = dict(chunk)
        with torch.inference_mode():
            logits = model(batch.tensor) if len(batch.paths) else torch.empty(0, 1)
        k = min(5, logits.shape[-1])
        best = logits.topk(k, dim=-1).indices if len(batch.paths) else torch.empty(0, k)
        for path, row in zip(batch.paths, best.tolist()):
            y = label[path]
            top1 += row[0] == y
            top5 += y in row
            rows.append({"image": path, "label": y, "top5": row})
        if progress:
            progress(min(i + batch_size, len(samples)), len(samples))
    n = len(rows)
    if n == 0:
        raise EffnetError(f"no image of {root} could be read")
    return {
        "images": n, "top1": 100.0 * top1 / n, "top5": 100.0 * top5 / n,
        "labels": data.labels, "failed": failed,
        "preprocessing": {"size": pre.resolution, "crop_pct": pre.crop_pct,
                          "resize_to": pre.resize_to, "interpolation": pre.interpolation,
                          "mean": list(pre.mean), "std": list(pre.std)},
        "seconds": round(time.perf_counter() - start, 2), "predictions": rows,
    }  # fmt: skip
