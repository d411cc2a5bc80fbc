"""Table 5 analogue: pre-train on Fashion-MNIST, fine-tune on scikit-learn's digits.

    .venv/bin/pip install -e '.[bench]'      # scikit-learn, for its bundled digits
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_transfer.py --sizes small &
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_transfer.py --sizes large; wait
    .venv/bin/python benchmarks/bench_transfer.py   # every run cached: the table and JSON

1. Writes sklearn.datasets.load_digits (1,797 8x8 images, 0-16 ink levels, bundled with
   scikit-learn) as an ImageFolder tree of grayscale PNGs (ink bright on black, as in
   Fashion-MNIST): --per-class training and --val-per-class validation images per digit,
   every other image as test/; stratified, drawn once with --split-seed.
2. For each size (efficientnet_b0 at depth 0.5, 32 px, width 0.35 and 0.7), pre-trains on
   the full Fashion-MNIST training set (5,000 held out as minival) for --pretrain-epochs
   with the "cpu" recipe, one run per size.
3. On the digits, for every seed, trains the same network with the same recipe ("cpu",
   horizontal flips off), epochs, batch and preprocessing (Fashion-MNIST's): from scratch,
   and from the pre-trained weights (``init``: a new 10-class head, the whole network
   fine-tuned). Test top-1 is that of the best-minival checkpoint.

The seeds vary the training only (head and from-scratch initialisation, batch order, drop
path); the digit split and the one pre-training run per size are shared by every seed.
Writes benchmarks/results/transfer.json and prints the table.
"""

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_finetune import run  # noqa: E402  (a sibling script: cached runs)
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from effnet import create_model, get_arch
from effnet.data import FASHION_MNIST_MEAN, FASHION_MNIST_STD, DataSpec
from effnet.machine import machine_info
from effnet.train import RECIPES

RESULTS = Path(__file__).parent / "results"
BASE = "efficientnet_b0"
SIZES = {  # model overrides of BASE; same depth and resolution, width doubled
    "small": dict(width=0.35, depth=0.5, resolution=32),
    "large": dict(width=0.7, depth=0.5, resolution=32),
}

# The pre-trained models keep Fashion-MNIST's preprocessing when fine-tuned (no centre crop,
# its mean/std); the from-scratch ones get the same, so only the starting weights differ.
SAME_INPUT = dict(crop_pct=1.0, mean=tuple(FASHION_MNIST_MEAN), std=tuple(FASHION_MNIST_STD))


def write_digits(root: Path, per_class: int, val_per_class: int, seed: int) -> Path:
    """train/ val/ test/ ImageFolder tree of the 1,797 digits, stratified by class.

    Written beside ``root`` and renamed into place, so two processes started together
    (one per size) never read a half-written tree.
    """
    if root.exists():
        return root
    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)
    labels = digits.target
    n_classes = len(digits.target_names)
    train_idx, rest = train_test_split(np.arange(len(labels)), train_size=per_class * n_classes,
                                       stratify=labels, random_state=seed)  # fmt: skip
    val_idx, test_idx = train_test_split(rest, train_size=val_per_class * n_classes,
                                         stratify=labels[rest], random_state=seed)  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    for split, picks in (("train", train_idx), ("val", val_idx), ("test", test_idx)):
        for i in picks:
            folder = tmp / split / f"digit{labels[i]}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i], mode="L").save(folder / f"{i}.png")
    try:
        tmp.rename(root)
    except OSError:  # the other process was first; its tree is the same
        shutil.rmtree(tmp)
    return root


def stats(values: list[float]) -> dict:
    return {
        "mean": statistics.mean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else None,
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--work", default="runs/bench_transfer", help="tree and run folders")
    p.add_argument("--sizes", default=",".join(SIZES))
    p.add_argument("--pretrain-epochs", type=float, default=4)
    p.add_argument("--pretrain-max-time", type=float, default=600, help="seconds, a safety cap")
    p.add_argument("--per-class", type=int, default=50)
    p.add_argument("--val-per-class", type=int, default=20)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--epochs", type=float, default=30)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--out", default=str(RESULTS / "transfer.json"))
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    work = Path(args.work)
    digits = DataSpec(
        str(write_digits(work / "digits", args.per_class, args.val_per_class, args.split_seed)),
        image_size=32,
        workers=0,
    )
    cpu = RECIPES["cpu"]
    sizes = args.sizes.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    work.mkdir(parents=True, exist_ok=True)
    pretrained, rows = {}, []
    for size in sizes:
        pre = work / f"{size}_fashion_mnist"
        recipe = cpu.replace(epochs=args.pretrain_epochs, max_time_s=args.pretrain_max_time)
        pm = run(pre, BASE, DataSpec(workers=0), recipe, model_overrides=SIZES[size])
        pretrained[size] = {k: pm[k] for k in ("test_top1", "epochs", "train_time_s")}
        for seed in seeds:
            # a mirrored digit is another symbol (or none): no horizontal flips
            recipe = cpu.replace(epochs=args.epochs, batch_size=args.batch, seed=seed, hflip=False)
            for start in ("scratch", "pretrained"):
                out = work / f"{size}_{start}_seed{seed}"
                if start == "scratch":
                    arch = get_arch(BASE, **SIZES[size]).replace(**SAME_INPUT)
                    m = run(out, arch, digits, recipe)
                else:
                    m = run(out, None, digits, recipe, init=pre / "model")
                rows.append({"size": size, "start": start, "seed": seed, **{k: m[k] for k in (
                    "test_top1", "minival_top1", "best_epoch", "train_time_s")}})  # fmt: skip
    summary = {
        size: {
            start: stats([r["test_top1"] for r in rows if (r["size"], r["start"]) == (size, start)])
            for start in ("scratch", "pretrained")
        }
        for size in sizes
    }
    for size in sizes:
        top1 = {(r["start"], r["seed"]): r["test_top1"] for r in rows if r["size"] == size}
        gains = [top1["pretrained", seed] - top1["scratch", seed] for seed in seeds]
        summary[size]["gain"] = stats(gains)
    params = {
        s: sum(t.numel() for t in create_model(BASE, num_classes=10, **SIZES[s]).parameters())
        for s in sizes
    }
    n_test = sum(1 for _ in (Path(digits.source) / "test").rglob("*.png"))
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_info(),
        "base": BASE,
        "sizes": {s: {**SIZES[s], "params_10_classes": params[s]} for s in sizes},
        "pretrain": {
            "data": "Fashion-MNIST, 55,000 training images (5,000 held out as minival)",
            "recipe": "cpu",
            "epochs": args.pretrain_epochs,
            "max_time_s": args.pretrain_max_time,
            "results": pretrained,
        },
        "finetune": {
            "data": "sklearn.datasets.load_digits written as PNGs, decoded at 32 px",
            "train_per_class": args.per_class,
            "val_per_class": args.val_per_class,
            "test_images": n_test,
            "split_seed": args.split_seed,
            "epochs": args.epochs,
            "batch": args.batch,
            "recipe": "cpu, hflip off",
            "preprocessing": "Fashion-MNIST's mean/std, no centre crop, for both starts",
        },
        "seeds": seeds,
        "seeds_vary": "training only (initialisation of head / scratch network, batch order, "
        "drop path); the digit split and the pre-training run are shared",
        "threads": torch.get_num_threads(),
        "runs": rows,
        "summary": summary,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"| size | pre-train FMNIST test top-1 | scratch | pretrained | gain "
          f"(paired, {len(seeds)} seeds) |")  # fmt: skip
    for size in sizes:
        s = summary[size]
        cells = [f"{s[k]['mean']:.2f} ± {s[k]['sd'] or 0:.2f}"
                 for k in ("scratch", "pretrained", "gain")]  # fmt: skip
        print(f"| {size} | {pretrained[size]['test_top1']:.2f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
