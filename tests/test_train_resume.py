"""A run killed with SIGKILL mid-epoch (and its last checkpoint then truncated) resumes to
exactly the result of a run that never stopped: same loss log, same weights, same metrics."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

pytestmark = pytest.mark.slow  # a training subprocess killed and resumed

ARGS = (
    "train efficientnet_b0 --workers 0 --width 0.25 --depth 0.34 --image-size 28 --recipe cpu "
    "--epochs 2 --batch-size 32 --lr 0.016 --deterministic --set checkpoint_every=4 --set "
    "log_every=1 --no-progress"
).split()
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def effnet(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "effnet", *args],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def losses(run):
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "time_s"} for r in records]


def summary(run):
    s = json.loads((run / "summary.json").read_text())
    return {k: v for k, v in s.items() if k != "train_time_s"}


def test_sigkill_and_truncated_checkpoint_resume_equals_uninterrupted(tmp_path, fashion_folder):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    data = ["--data", str(fashion_folder(tmp_path / "data", (40, 10, 10))), "--decode-size", "28"]
    p = effnet(*ARGS, *data, "--out", str(straight))  # 400 images: 12 steps of 32 per epoch
    k = effnet(*ARGS, *data, "--out", str(killed))
    ckpts = killed / "checkpoints"
    deadline = time.time() + 300
    while not (ckpts / "previous.pt").exists():  # two checkpoints: steps 4 and 8 (mid-epoch)
        assert k.poll() is None and time.time() < deadline, k.communicate()[1][-2000:]
        time.sleep(0.02)
    k.send_signal(signal.SIGKILL)
    assert k.wait() == -signal.SIGKILL
    last = ckpts / "last.pt"
    step_before = torch.load(last, weights_only=True)["step"]
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # damaged: use previous.pt
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-2000:]
    r = effnet("train", "--resume", str(killed), "--no-progress")
    out_r, err_r = r.communicate(timeout=600)
    assert r.returncode == 0, err_r[-2000:]
    assert "last.pt is damaged" in err_r
    assert 4 <= step_before < 24 and step_before % 12 != 0  # killed mid-epoch
    assert losses(killed) == losses(straight)  # bit-identical loss log (24 step records)
    assert len([r for r in losses(straight) if r["kind"] == "step"]) == 24
    assert summary(killed) == summary(straight)
    a = torch.load(straight / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(killed / "checkpoints" / "last.pt", weights_only=True)
    assert all(torch.equal(a["model"][n], b["model"][n]) for n in a["model"])
    assert all(torch.equal(a["ema"][n], b["ema"][n]) for n in a["ema"])


def test_a_deterministic_run_resumes_with_the_threads_it_trained_with(tmp_path, fashion_folder):
    """The audit's case (#35): trained with --threads 1, resumed without it on a 2-core
    machine. The resume used to take the default count, and the order of the sums changed
    the loss by 1e-6 from the first step on. The run's config now keeps the count, and a
    resume without --threads uses it: bit-identical logs and weights."""
    env = {k: v for k, v in ENV.items() if k not in ("OMP_NUM_THREADS", "EFFNET_THREADS")}

    def run(*args):
        cmd = [sys.executable, "-m", "effnet", *args]
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)  # fmt: skip

    straight, killed = tmp_path / "straight", tmp_path / "killed"
    data = ["--data", str(fashion_folder(tmp_path / "data", (40, 10, 10))), "--decode-size", "28"]
    p = run(*ARGS, *data, "--threads", "1", "--out", str(straight))
    k = run(*ARGS, *data, "--threads", "1", "--out", str(killed))
    deadline = time.time() + 300
    while not (killed / "checkpoints" / "previous.pt").exists():
        assert k.poll() is None and time.time() < deadline, k.communicate()[1][-2000:]
        time.sleep(0.02)
    k.send_signal(signal.SIGKILL)
    k.wait()
    assert p.wait(timeout=600) == 0
    r = run("train", "--resume", str(killed), "--no-progress")
    assert r.wait(timeout=600) == 0, r.communicate()[1][-2000:]
    assert json.loads((killed / "run.json").read_text())["threads"] == 1
    assert losses(killed) == losses(straight)
    a = torch.load(straight / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(killed / "checkpoints" / "last.pt", weights_only=True)
    assert all(torch.equal(a["model"][n], b["model"][n]) for n in a["model"])
