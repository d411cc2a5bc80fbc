"""`effnet train` under torchrun: 2 CPU processes (gloo) against the single-process oracle.

Each rank normalises with its own half-batch BN statistics (SyncBatchNorm needs GPUs), so
the oracle for the first logged loss is the same model, same initialisation and same global
batch, evaluated as two half-batches and averaged. Later steps see all-reduced (averaged)
gradients, so the loss log stays close to the single-process run.
"""

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from effnet.arch import Architecture
from effnet.data import BatchTransform, DataSpec, load_splits
from effnet.model import build
from effnet.train.distributed import Dist, EpochBatchSampler

pytestmark = pytest.mark.slow  # torchrun with two processes

ARGS = (
    "train efficientnet_b0 --workers 0 --width 0.25 --depth 0.34 --image-size 28 --recipe cpu "
    "--epochs 0.25 --batch-size 32 --no-progress --set log_every=1 --set drop_path=0 --set "
    "dropout=0 --set hflip=false --set crop_padding=0 --set random_erasing=0"
).split()
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def step_losses(run):
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if r["kind"] == "step"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, fashion_folder):
    root = tmp_path_factory.mktemp("ddp")
    data = ["--data", str(fashion_folder(root / "data", (26, 5, 5))), "--decode-size", "28"]
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "effnet",
    ]
    ddp = subprocess.Popen(
        [*torchrun, *ARGS, *data, "--out", str(root / "ddp")],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    single = subprocess.run(
        [sys.executable, "-m", "effnet", *ARGS, *data, "--out", str(root / "one")],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    _, err = ddp.communicate(timeout=600)
    assert ddp.returncode == 0, err[-3000:]
    assert single.returncode == 0, single.stderr[-3000:]
    return root / "ddp", root / "one"


def half_batch_oracle(run):
    config = json.loads((run / "run.json").read_text())
    arch, recipe = Architecture.from_dict(config["model"]), config["recipe"]
    torch.manual_seed(recipe["seed"])
    model = build(arch, num_classes=10, in_chans=3).train()
    if recipe.get("zero_init_head"):
        torch.nn.init.zeros_(model.classifier.weight)
    splits = load_splits(DataSpec.from_dict(config["data"]), arch.resolution)
    batch = next(iter(EpochBatchSampler(len(splits.train), 32, recipe["seed"], 0, Dist())))
    x = torch.stack([splits.train[i][0] for i in batch])
    y = torch.tensor([splits.train[i][1] for i in batch])
    t = BatchTransform(
        arch.resolution,
        arch.mean,
        arch.std,
        train=True,
        randaugment=None,
        hflip=False,
        crop_padding=0.0,
    )
    with torch.no_grad():
        halves = [
            F.cross_entropy(model(t(x[s])), y[s], label_smoothing=recipe["label_smoothing"])
            for s in (slice(0, 16), slice(16, 32))
        ]
    return float(sum(halves) / 2)


def test_two_process_gloo_first_step_loss_matches_oracle(runs):
    ddp, one = runs
    assert json.loads((ddp / "summary.json").read_text())["world_size"] == 2
    assert not (ddp / "checkpoints" / "rank1").exists()
    first = step_losses(ddp)[0]
    assert first == pytest.approx(half_batch_oracle(ddp), rel=1e-5)
    assert first == pytest.approx(step_losses(one)[0], rel=0.15)  # BN over 16 vs 32 images


def test_two_process_run_tracks_single_process(runs):
    ddp, one = runs
    a, b = step_losses(ddp), step_losses(one)
    assert len(a) == len(b) == 2
    assert a[1] == pytest.approx(b[1], rel=0.15)
    sa = json.loads((ddp / "summary.json").read_text())
    sb = json.loads((one / "summary.json").read_text())
    assert sa["steps"] == sb["steps"] == 2 and sa["params"] == sb["params"]
