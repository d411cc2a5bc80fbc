"""Evaluate a finished run (its best checkpoint) or a named model on a data split."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from effnet.arch import Architecture
from effnet.data import BatchTransform, DataSpec, load_splits
from effnet.errors import EffnetError
from effnet.hub import create_model
from effnet.io import atomic_write_with
from effnet.model import build
from effnet.registry import ARCHITECTURES
from effnet.train import distributed, runfolder
from effnet.train.loop import batches, evaluate
from effnet.train.outcome import reported_state
from effnet.weights import from_pretrained

SPLITS = ("test", "minival", "train")


def load_run_model(run_dir: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The reported weights of a run folder (its recipe's ``report_weights``), and its config."""
    run = Path(run_dir)
    try:
        config = json.loads(runfolder.config_path(run).read_text())
    except (OSError, ValueError):  # ValueError: malformed JSON or not UTF-8
        raise EffnetError(f"{run} is not a run folder (no readable {runfolder.CONFIG})") from None
    arch = Architecture.from_dict(config["model"])
    net = build(arch, num_classes=config["num_classes"], in_chans=config["in_chans"])
    net.load_state_dict(reported_state(run, runfolder.recipe_of(config))["model"])
    return net.eval(), config


TTA = ("flip",)


class FlipAverage(nn.Module):
    """Test-time augmentation: the mean of the logits of an image and its mirror image."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.model(x) + self.model(x.flip(-1))) / 2


def evaluate_run(
    run_dir_or_model: str | Path | nn.Module,
    data: DataSpec | None = None,
    split: str = "test",
    batch_size: int = 256,
    tta: str | None = None,
) -> dict[str, Any]:
    """Top-1, top-5, loss and confusion matrix on ``split`` ("test", "minival" or "train").

    A run folder brings its own data spec (used when ``data`` is None) and normalisation;
    a model name or architecture file is evaluated as built (useful with pretrained weights).
    ``tta="flip"`` averages the logits of each image and its mirror image (decide on
    minival whether it helps; on Fashion-MNIST it added 0.5 points).
    """
    if split not in SPLITS:
        raise EffnetError(f"split must be one of {SPLITS}, got {split!r}")
    if tta is not None and tta not in TTA:
        raise EffnetError(f"tta must be one of {TTA}, got {tta!r}")
    target = run_dir_or_model
    if isinstance(target, nn.Module):
        net, config = target, None
    elif runfolder.is_run(Path(target)):
        net, config = load_run_model(target)
    elif (Path(target) / "model.safetensors").is_file():
        net, config = from_pretrained(target), None
    else:
        if not Path(target).exists() and str(target) not in ARCHITECTURES:
            raise EffnetError(f"{target}: no such run folder, saved model or model name")
        if data is None:
            raise EffnetError("evaluating a model (not a run folder) needs a data spec")
        splits = load_splits(data)
        net = create_model(str(target), num_classes=splits.num_classes, in_chans=splits.in_chans)
        config = None
    if data is None:
        if config is None:
            raise EffnetError(
                f"{target} is a saved model, not a run folder: it does not say its data; pass "
                "--data (an ImageFolder root, a .npz file or fashion-mnist)"
            )
        data = DataSpec.from_dict(config["data"])
    elif config is None and split == "test":  # a user's data: the test split needs no minival
        data = dataclasses.replace(data, minival=0)
    arch = net.arch
    splits = load_splits(data, arch.resolution)
    if splits.num_classes != net.num_classes:
        raise EffnetError(f"model has {net.num_classes} classes, data has {splits.num_classes}")
    if splits.in_chans != getattr(net, "in_chans", splits.in_chans):
        raise EffnetError(
            f"{arch.name} takes {net.in_chans}-channel images; the data has {splits.in_chans}"
        )
    transform = BatchTransform(
        arch.resolution,
        arch.mean,
        arch.std,
        train=False,
        crop_pct=arch.crop_pct,
        interpolation=arch.interpolation,
    )
    dataset = getattr(splits, split)
    d = distributed.Dist()
    sampler = torch.utils.data.BatchSampler(range(len(dataset)), batch_size, drop_last=False)
    runner = FlipAverage(net).eval() if tta == "flip" else net
    result = evaluate(
        runner, batches(dataset, sampler, data.workers), transform, splits.num_classes, d
    )
    result.update(split=split, class_names=splits.class_names, model=arch.name, tta=tta,
                  skipped=splits.bad_files)  # fmt: skip
    return result


def plot_confusion(confusion: list[list[int]], class_names: list[str], path: str | Path) -> Path:
    """A confusion-matrix heat map (rows: true class, columns: predicted), written atomically."""
    # matplotlib loads only when a plot is drawn
    import matplotlib

    matplotlib.use("Agg")
    # matplotlib loads only when a plot is drawn
    import matplotlib.pyplot as plt

    m = torch.tensor(confusion, dtype=torch.float64)
    norm = m / m.sum(1, keepdim=True).clamp(min=1)
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * n, 0.8 + 0.6 * n))
    ax.imshow(norm.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), class_names, rotation=90)
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                color = "white" if norm[i, j] > 0.5 else "black"
                ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=7, color=color)
    fig.tight_layout()
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return Path(path)
