"""Transfer on Fashion-MNIST: pre-train on classes 0-4, fine-tune on few images of 5-9.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_finetune.py

1. Writes two ImageFolder trees of PNGs from the full dataset (effnet.data.fashion_mnist):
   ``pretrain/`` (classes 0-4: --pretrain-per-class training images each, 100 each as
   val/ for model selection, their official test images as test/) and ``finetune/``
   (classes 5-9: --per-class training images each, 20 each as val/, all their official
   test images as test/).
2. Pre-trains efficientnet_b0 at width 0.5, depth 0.5, 32 px with the "cpu" recipe.
3. On ``finetune/``, for every seed, trains the same network with the same recipe and
   epochs: from scratch; from the pre-trained weights (full fine-tune); from them with the
   backbone frozen for the first --freeze-epochs; with the backbone at --lr-mult times the
   head's learning rate; with batch norm frozen; and with the backbone frozen throughout
   (a linear probe), at the recipe's learning rate and at 10 times it.
Reports test top-1 (best minival checkpoint) of each; writes benchmarks/results/finetune.json.
"""

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from effnet.data import DataSpec
from effnet.data.fashion_mnist import CLASS_NAMES, load_arrays
from effnet.machine import machine_info
from effnet.train import RECIPES, train

RESULTS = Path(__file__).parent / "results"
MODEL = dict(width=0.5, depth=0.5, resolution=32)


def write_tree(root: Path, classes, per_class: dict[str, int], arrays, seed: int) -> Path:
    """train/ and val/ drawn (without overlap) from the training images, test/ from the
    official test images (all of them when per_class["test"] is None)."""
    if (root / "done").exists():
        return root
    train_x, train_y, test_x, test_y = arrays
    rng = np.random.default_rng(seed)
    for c in classes:
        name = f"{c}_{CLASS_NAMES[c].replace('/', '-').replace(' ', '_')}"
        pool = rng.permutation(np.flatnonzero(train_y == c))
        picks = {
            "train": pool[: per_class["train"]],
            "val": pool[per_class["train"] : per_class["train"] + per_class["val"]],
        }
        picks["test"] = np.flatnonzero(test_y == c)
        for split, idx in picks.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            images = test_x if split == "test" else train_x
            for i in idx:
                Image.fromarray(images[i]).save(folder / f"{i}.png")
    (root / "done").write_text("")
    return root


def run(out: Path, *args, **kwargs) -> dict:
    if (out / "summary.json").exists():
        return json.loads((out / "summary.json").read_text())
    t0 = time.time()
    m = train(*args, out=out, progress=False, **kwargs).metrics
    print(f"{out.name}: test top-1 {m['test_top1']:.2f}% ({time.time() - t0:.0f} s)", flush=True)
    return m


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--work", default="runs/bench_finetune", help="trees and run folders")
    p.add_argument("--pretrain-per-class", type=int, default=2000)
    p.add_argument("--pretrain-epochs", type=float, default=6)
    p.add_argument("--per-class", type=int, default=100)
    p.add_argument("--epochs", type=float, default=15)
    p.add_argument("--freeze-epochs", type=float, default=5)
    p.add_argument("--lr-mult", type=float, default=0.1)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--out", default=str(RESULTS / "finetune.json"))
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    work = Path(args.work)
    arrays = load_arrays()
    pre = write_tree(work / "pretrain", range(5),
                     {"train": args.pretrain_per_class, "val": 100}, arrays, 0)  # fmt: skip
    ft = write_tree(
        work / "finetune", range(5, 10), {"train": args.per_class, "val": 20}, arrays, 1
    )
    decode = dict(image_size=32, workers=0)
    base = RECIPES["cpu"].replace(batch_size=args.batch)
    pm = run(work / "pretrained", "efficientnet_b0", DataSpec(str(pre), **decode),
             base.replace(epochs=args.pretrain_epochs), model_overrides=MODEL)  # fmt: skip
    init = work / "pretrained" / "model"
    variants = {
        "scratch": ({}, False),
        "finetune": ({}, True),
        f"finetune_freeze{args.freeze_epochs:g}": ({"freeze_epochs": args.freeze_epochs}, True),
        f"finetune_lr_mult{args.lr_mult:g}": ({"backbone_lr_mult": args.lr_mult}, True),
        "finetune_freeze_bn": ({"freeze_bn": True}, True),
        "linear_probe": ({"freeze_epochs": args.epochs}, True),  # only the head ever trains
        "linear_probe_lr10": ({"freeze_epochs": args.epochs, "lr": 10 * base.lr}, True),
    }
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for name, (changes, from_init) in variants.items():
            recipe = base.replace(epochs=args.epochs, seed=seed, **changes)
            data = DataSpec(str(ft), **decode)
            out = work / f"{name}_seed{seed}"
            if from_init:
                m = run(out, None, data, recipe, init=init)
            else:
                m = run(out, "efficientnet_b0", data, recipe, model_overrides=MODEL)
            rows.append({"variant": name, "seed": seed, **{k: m[k] for k in (
                "test_top1", "minival_top1", "best_epoch", "train_time_s")}})  # fmt: skip
    summary = {}
    for name in variants:
        top1 = [r["test_top1"] for r in rows if r["variant"] == name]
        summary[name] = {
            "mean_test_top1": statistics.mean(top1),
            "sd": statistics.stdev(top1) if len(top1) > 1 else None,
            "min": min(top1),
            "max": max(top1),
            "seeds": len(top1),
        }
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_info(),
        "model": "efficientnet_b0 width 0.5 depth 0.5 at 32 px",
        "pretrain": {"classes": [CLASS_NAMES[c] for c in range(5)],
                     "train_per_class": args.pretrain_per_class, "epochs": args.pretrain_epochs,
                     "test_top1": pm["test_top1"], "train_time_s": pm["train_time_s"]},
        "finetune": {"classes": [CLASS_NAMES[c] for c in range(5, 10)],
                     "train_per_class": args.per_class, "val_per_class": 20,
                     "test_images": 5000, "epochs": args.epochs, "batch": args.batch,
                     "recipe": "cpu", "freeze_epochs": args.freeze_epochs,
                     "backbone_lr_mult": args.lr_mult},
        "threads": torch.get_num_threads(),
        "runs": rows,
        "summary": summary,
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for name, s in summary.items():
        sd = f" sd {s['sd']:.2f}" if s["sd"] is not None else ""
        print(f"{name:24s} test top-1 {s['mean_test_top1']:.2f}%{sd} "
              f"(min {s['min']:.2f}, max {s['max']:.2f}, {s['seeds']} seeds)")  # fmt: skip


if __name__ == "__main__":
    main()
