"""The timm side of benchmarks/validate_vs_timm.py (run in the reference env).

make DIR: a folder of real photographs (scikit-image's bundled data), a full-size
EfficientNet-B0 with random weights and batch-norm statistics saved as a hub repository
in DIR/cache (timm's names, a timm config.json with a pretrained_cfg), and each photo
filed under the ImageNet WordNet id of the class timm predicts for it (DIR/val).
validate DIR: timm's validate.py path on DIR/val (create_dataset, resolve_data_config,
create_loader without the CUDA prefetcher): top-1, top-5 and per-image top-1 as JSON.
"""

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import skimage
import timm
import torch
from safetensors.torch import save
from timm.data import create_dataset, create_loader, resolve_data_config

REPO = "timm/efficientnet_b0.effnet_check"
CFG = {"tag": "effnet_check", "input_size": [3, 224, 224], "crop_pct": 0.875,
       "interpolation": "bicubic", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
       "num_classes": 1000}  # fmt: skip


def model(center: torch.Tensor | None = None) -> torch.nn.Module:
    """Random weights and BN statistics; ``center`` (the photos' mean pooled feature) moves
    into the classifier's bias, so that a random network tells the photos apart instead of
    giving all of them the class its mean feature picks."""
    torch.manual_seed(0)
    m = timm.create_model("efficientnet_b0")
    g = torch.Generator().manual_seed(0)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            n = mod.num_features
            mod.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            mod.running_var.copy_(torch.rand(n, generator=g) + 0.5)
    m.eval()
    if center is not None:
        with torch.no_grad():
            m.classifier.bias.copy_(-m.classifier.weight @ center)
    return m


def write_repo(cache: Path, files: dict) -> None:
    root = cache / ("models--" + REPO.replace("/", "--"))
    snap = root / "snapshots" / ("0" * 40)
    for d in (root / "blobs", snap, root / "refs"):
        d.mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text("0" * 40)
    for name, data in files.items():
        lfs = not name.endswith(".json")
        tag = (hashlib.sha256(data) if lfs else
               hashlib.sha1(b"blob %d\0" % len(data) + data)).hexdigest()  # fmt: skip
        (root / "blobs" / tag).write_bytes(data)
        os.symlink(os.path.relpath(root / "blobs" / tag, snap), snap / name)


def make(out: Path) -> None:
    data = Path(skimage.__file__).parent / "data"
    photos = sorted(p for p in data.iterdir() if p.suffix in (".png", ".jpg")
                    and not p.name.startswith(("chessboard", "logo", "text", "page", "phantom",
                                               "color", "horse")))  # fmt: skip
    from PIL import Image

    m = model()
    m.pretrained_cfg = {**m.pretrained_cfg, **CFG}
    tf = timm.data.create_transform(**resolve_data_config(model=m))
    x = torch.stack([tf(Image.open(p).convert("RGB")) for p in photos])
    with torch.no_grad():
        center = m.forward_head(m.forward_features(x), pre_logits=True).mean(0)
    m = model(center)
    (out / "center.pt").parent.mkdir(parents=True, exist_ok=True)
    torch.save(center, out / "center.pt")
    sd = {k: v.contiguous() for k, v in m.state_dict().items()}
    config = {"architecture": "efficientnet_b0", "num_classes": 1000, "pretrained_cfg": CFG}
    write_repo(out / "cache", {"config.json": json.dumps(config).encode(),
                               "model.safetensors": save(sd)})  # fmt: skip
    m.pretrained_cfg = {**m.pretrained_cfg, **CFG}
    synsets = (
        (Path(timm.data.__file__).parent / "_info" / "imagenet_synsets.txt").read_text().split()
    )
    for p in photos:
        img = Image.open(p).convert("RGB")
        with torch.no_grad():
            c = int(m(tf(img)[None]).argmax())
        folder = out / "val" / synsets[c]
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, folder / p.name)
    print(json.dumps({"photos": len(photos), "classes": len(list((out / "val").iterdir()))}))


def validate(out: Path) -> None:
    m = model(torch.load(out / "center.pt", weights_only=True))
    m.pretrained_cfg = {**m.pretrained_cfg, **CFG}
    cfg = resolve_data_config(model=m)
    ds = create_dataset("", root=str(out / "val"))
    # the folder holds a few classes: their ImageNet index, as validate.py --class-map does
    synsets = (
        (Path(timm.data.__file__).parent / "_info" / "imagenet_synsets.txt").read_text().split()
    )
    names = sorted(d.name for d in (out / "val").iterdir())
    to_imagenet = torch.tensor([synsets.index(n) for n in names])
    loader = create_loader(ds, input_size=cfg["input_size"], batch_size=8, use_prefetcher=False,
                           interpolation=cfg["interpolation"], mean=cfg["mean"], std=cfg["std"],
                           crop_pct=cfg["crop_pct"], crop_mode=cfg.get("crop_mode", "center"),
                           num_workers=0)  # fmt: skip
    top1 = top5 = n = 0
    rows = []
    with torch.no_grad():
        for x, y in loader:
            y = to_imagenet[y]
            best = m(x).topk(5, dim=1).indices
            top1 += int((best[:, 0] == y).sum())
            top5 += int((best == y[:, None]).any(1).sum())
            n += len(y)
            rows += best[:, 0].tolist()
    print(json.dumps({"images": n, "top1": 100 * top1 / n, "top5": 100 * top5 / n,
                      "timm": timm.__version__, "predictions": rows}))  # fmt: skip


if __name__ == "__main__":
    {"make": make, "validate": validate}[sys.argv[1]](Path(sys.argv[2]))
