"""effnet validate against timm's validate.py path, on one folder of real photographs and
one set of weights (``#31``: top-1 within 0.05 points).

The reference env (tools/timm_validate_side.py) files 18 real photographs (scikit-image's
bundled data: astronaut, cat, coffee, rocket, ...) under the ImageNet class a full-size
EfficientNet-B0 with random weights predicts for each, and saves those weights as a hub
repository; timm then validates the folder its own way, effnet validates it from the hub
cache (``effnet validate hf-hub:...``, offline). Labels are timm's predictions, so timm
scores 100% and effnet's top-1 is the share of photos on which the two agree; the top-5 is
the share whose whole top-5 list contains timm's top-1.

    /opt/effnet-reference/bin/pip install scikit-image    # the photographs, once
    .venv/bin/python benchmarks/validate_vs_timm.py   # writes results/validate_vs_timm.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from effnet.machine import machine_info

REFERENCE = Path(os.environ.get("EFFNET_REFERENCE_ENV", "/opt/effnet-reference")) / "bin/python"
ROOT = Path(__file__).resolve().parent.parent
SIDE = ROOT / "tools" / "timm_validate_side.py"
OUT = ROOT / "benchmarks" / "results" / "validate_vs_timm.json"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        made = json.loads(subprocess.check_output([str(REFERENCE), str(SIDE), "make", tmp]))
        timm = json.loads(subprocess.check_output([str(REFERENCE), str(SIDE), "validate", tmp]))
        env = {**os.environ, "HF_HUB_CACHE": str(work / "cache"), "HF_HUB_OFFLINE": "1"}
        ours_json = work / "ours.json"
        subprocess.run([sys.executable, "-m", "effnet", "validate",
                        "hf-hub:timm/efficientnet_b0.effnet_check", str(work / "val"),
                        "--json", str(ours_json)], check=True, env=env)  # fmt: skip
        ours = json.loads(ours_json.read_text())
    result = {
        "machine": machine_info(), "photos": made["photos"], "classes": made["classes"],
        "timm": {"version": timm["timm"], "top1": timm["top1"], "top5": timm["top5"]},
        "effnet": {"top1": ours["top1"], "top5": ours["top5"]},
        "top1_difference_pt": round(abs(ours["top1"] - timm["top1"]), 3),
        "preprocessing": ours["preprocessing"],
    }  # fmt: skip
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(f"timm top-1 {timm['top1']:.3f}%, effnet top-1 {ours['top1']:.3f}% on "
          f"{made['photos']} photos: difference {result['top1_difference_pt']} pt "
          f"(target <= 0.05); wrote {OUT}")  # fmt: skip


if __name__ == "__main__":
    main()
