"""Writes src/effnet/pretrained/tags.json: every published tag of an architecture effnet
builds, with its hub id or URL and the preprocessing its weights expect.

Run in the reference environment (timm 1.0.31, torchvision 0.28), from the repository root:

    /opt/effnet-reference/bin/python tools/make_pretrained_table.py TOP1.json

timm's tags come from its pretrained configs (hub id, input and test size, crop_pct,
interpolation, mean/std, classes; the first tag of an architecture is its default);
torchvision's from its weight enums (URL with the hash prefix, resize and crop size,
interpolation, mean/std, published acc@1), tagged ``tv_in1k`` (``tv2_in1k`` for a second
recipe). TOP1.json holds timm's published top-1 per tag (results/results-imagenet.csv of
huggingface/pytorch-image-models, collected into {"rows": {tag: {img_size, top1}}}).
Nothing is downloaded. The ImageNet-1k class names (torchvision's) and folder names
(WordNet ids, timm's) are written beside the table, in the classifier's order.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import timm
import torchvision
from timm.models import get_pretrained_cfg
from torchvision.models import get_model_weights

OUT = Path("src/effnet/pretrained")
# torchvision's names -> ours (its V2 are the official networks with symmetric padding)
TORCHVISION = {f"efficientnet_b{i}": f"efficientnet_b{i}" for i in range(8)} | {
    f"efficientnet_v2_{s}": f"efficientnetv2_{s}" for s in "sml"
}


def our_names() -> set[str]:
    code = "from effnet.registry import ARCHITECTURES; print('\\n'.join(ARCHITECTURES))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": "src"}, check=True)  # fmt: skip
    return set(out.stdout.split())


def timm_rows(ours: set[str], top1: dict) -> dict[str, dict]:
    rows = {}
    for full in timm.list_pretrained():
        arch, _, tag = full.partition(".")
        if arch not in ours or "efficientnet" not in arch:  # our ResNets: no timm mapping
            continue
        c = get_pretrained_cfg(full).to_dict()
        default = get_pretrained_cfg(arch).to_dict().get("tag") == tag
        test = c.get("test_input_size") or c["input_size"]
        published = top1.get(full, {})
        rows[full] = dict(
            architecture=arch, tag=tag, default=default, source="timm",
            hf_hub_id=c.get("hf_hub_id"), url=None,
            input_size=list(c["input_size"]), test_input_size=list(test),
            crop_pct=c["crop_pct"], test_crop_pct=c.get("test_crop_pct") or c["crop_pct"],
            interpolation=c["interpolation"], mean=list(c["mean"]), std=list(c["std"]),
            num_classes=c["num_classes"], license=c.get("license"),
            top1=published.get("top1"), top1_size=published.get("img_size"),
        )  # fmt: skip
    return rows


def torchvision_rows(have_default: set[str]) -> dict[str, dict]:
    rows = {}
    for theirs, arch in TORCHVISION.items():
        for i, w in enumerate(get_model_weights(theirs)):
            t = w.transforms()
            tag = "tv_in1k" if i == 0 else f"tv{i + 1}_in1k"
            crop, resize = t.crop_size[0], t.resize_size[0]
            rows[f"{arch}.{tag}"] = dict(
                architecture=arch, tag=tag, default=i == 0 and arch not in have_default,
                source="torchvision", hf_hub_id=None, url=w.url,
                input_size=[3, crop, crop], test_input_size=[3, crop, crop],
                crop_pct=round(crop / resize, 4), test_crop_pct=round(crop / resize, 4),
                interpolation=t.interpolation.value, mean=list(t.mean), std=list(t.std),
                num_classes=len(w.meta["categories"]), license="bsd-3-clause",
                top1=w.meta["_metrics"]["ImageNet-1K"]["acc@1"], top1_size=crop,
                torchvision=f"{theirs}.{w.name}",
            )  # fmt: skip
    return rows


def main(argv: list[str]) -> None:
    results = json.loads(Path(argv[0]).read_text())
    ours = our_names()
    rows = timm_rows(ours, results["rows"])
    defaults = {r["architecture"] for r in rows.values() if r["default"]}
    rows |= torchvision_rows(defaults)
    table = {
        "made_by": "tools/make_pretrained_table.py",
        "timm": timm.__version__,
        "torchvision": torchvision.__version__,
        "top1_from": f"{results['source']} @ {results.get('commit', '?')}",
        "tags": dict(sorted(rows.items())),
    }
    (OUT / "tags.json").write_text(json.dumps(table, indent=1) + "\n")
    names = get_model_weights("efficientnet_b0")["IMAGENET1K_V1"].meta["categories"]
    (OUT / "imagenet_classes.txt").write_text("\n".join(names) + "\n")
    # the ImageNet-1k folder names (WordNet ids) in the same order, for effnet validate
    synsets = Path(timm.data.__file__).parent / "_info" / "imagenet_synsets.txt"
    (OUT / "imagenet_synsets.txt").write_text(synsets.read_text())
    print(f"{len(rows)} tags of {len({r['architecture'] for r in rows.values()})} architectures")


if __name__ == "__main__":
    main(sys.argv[1:])
