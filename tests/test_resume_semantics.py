"""What `train --resume` keeps, changes and refuses: the saved recipe, extended epochs,
changed data, an empty minival, bad_files.txt and missing checkpoints. Tiny runs on a
synthetic ImageFolder tree (two classes of noisy squares), a few steps each."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from conftest import two_class_tree

from effnet.cli import main
from effnet.rundir import LOCK

pytestmark = [
    pytest.mark.slow,
    pytest.mark.usefixtures("one_thread"),
]  # training runs stopped and resumed

TINY = ["--width", "0.25", "--depth", "0.34", "--image-size", "32", "--decode-size", "32",
        "--recipe", "cpu", "--workers", "0", "--no-progress", "--set", "log_every=1"]  # fmt: skip


def image_tree(root: Path, n_train: int = 16, n_val: int = 4) -> Path:
    """train/ and val/ (the test split), two classes, 32x32 PNGs."""
    counts = {"train": n_train, "val": n_val}
    return two_class_tree(root, counts, levels=(50, 200), names=("dark", "light"))


def train(tmp_path: Path, name: str, *args: str, data: Path | None = None) -> Path:
    data = data or image_tree(tmp_path / f"{name}-data")
    run = tmp_path / name
    argv = ["train", "efficientnet_b0", "--data", str(data), "--out", str(run), *TINY, *args]
    assert main(argv) == 0
    return run


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != LOCK
    }


def refused(capsys: pytest.CaptureFixture[str], run: Path, *args: str) -> str:
    """Resume with ``args``: exit 2, one line, nothing in the run folder changed."""
    before = snapshot(run)
    assert main(["train", "--resume", str(run), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("effnet: error:") and "\n" not in err, err
    assert snapshot(run) == before
    return err


def records(run: Path, kind: str | None = None) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if kind is None or r["kind"] == kind]


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


RECIPE = ["--batch-size", "8", "--lr", "0.02", "--seed", "3", "--deterministic", "--minival", "8"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished one-epoch run (24 training images, batch 8: 3 steps) with a non-default
    recipe, and a copy of it taken before any test resumes it."""
    tmp = tmp_path_factory.mktemp("finished")
    run = train(tmp, "run", *RECIPE, "--epochs", "1")
    shutil.copytree(run, tmp / "pristine")
    return run


@pytest.fixture
def run(finished, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(finished.parent / "pristine", copy)
    return copy


def test_resume_extends_epochs_with_the_saved_recipe(run, capsys):
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0
    recipe = json.loads((run / "run.json").read_text())["recipe"]
    assert (recipe["batch_size"], recipe["lr"], recipe["seed"]) == (8, 0.02, 3)
    assert recipe["deterministic"] is True and recipe["epochs"] == 2
    s = summary(run)
    assert (s["epochs"], s["steps"]) == (2.0, 6)  # epochs that ran, at the saved batch size
    assert [r["epoch"] for r in records(run, "epoch")] == [1.0, 2.0]
    assert [r["step"] for r in records(run, "step")] == [1, 2, 3, 4, 5, 6]
    assert records(run, "resume") == [{"kind": "resume", "step": 3, "changes": {"epochs": [1, 2]}}]


def test_resume_of_a_finished_run_claims_no_new_epochs(run):
    before = summary(run)
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    after = summary(run)
    assert (after["epochs"], after["steps"]) == (before["epochs"], before["steps"]) == (1.0, 3)


@pytest.mark.parametrize(
    "args, flag",
    [
        (["--lr", "0.1"], "--lr"),
        (["--batch-size", "4"], "--batch-size"),
        (["--seed", "1"], "--seed"),
        (["--deterministic"], "--deterministic"),
        (["--recipe", "paper"], "--recipe"),
        (["--set", "label_smoothing=0.2"], "--set"),
        (["--data", "fashion-mnist"], "--data"),
        (["--minival", "4"], "--minival"),
        (["--width", "2"], "--width"),
        (["--out", "elsewhere"], "--out"),
    ],
)
def test_resume_refuses_other_flags_naming_them(run, capsys, args, flag):
    err = refused(capsys, run, *args)
    assert err.startswith(f"effnet: error: {flag} cannot be given with --resume")


def test_resume_refuses_fewer_epochs_than_trained(run, capsys):
    assert "already trained 1 epochs" in refused(capsys, run, "--epochs", "0.5")


def test_resume_refuses_changed_data(tmp_path, capsys):
    data = image_tree(tmp_path / "data")
    run = train(tmp_path, "run", "--batch-size", "8", "--minival", "8", "--epochs", "1", data=data)
    for split in ("train", "val"):  # a class renamed: labels would be remapped
        (data / split / "dark").rename(data / split / "zdark")
    assert "classes changed (missing ['dark'], new ['zdark'])" in refused(capsys, run)
    for split in ("train", "val"):
        (data / split / "zdark").rename(data / split / "dark")
    moved = data / "train" / "light" / "0.png"
    moved.rename(data / "train" / "dark" / "moved.png")  # same counts, one label changed
    assert "image files changed" in refused(capsys, run)
    (data / "train" / "dark" / "moved.png").unlink()
    assert "train split has 23 images, the run had 24" in refused(capsys, run)


def test_the_test_number_is_the_final_ema_and_without_minival_best_is_the_last_epoch(tmp_path):
    """report_weights "final" (the default): the final EMA, whatever minival says; "best"
    with no minival images to choose on: the last epoch's raw weights, said so."""
    run = train(tmp_path, "run", "--batch-size", "8", "--minival", "0", "--epochs", "2")
    s = summary(run)
    assert s["selected_by"] == "final EMA weights" and s["minival_top1"] is None
    assert s["best_epoch"] == 2.0 and s["best_source"] == "ema" and s["report_weights"] == "final"
    run = train(tmp_path, "best", "--batch-size", "8", "--minival", "0", "--epochs", "2",
                "--set", "report_weights=best")  # fmt: skip
    s = summary(run)
    assert s["selected_by"] == "last epoch" and s["minival_top1"] is None
    assert s["best_epoch"] == 2.0 and s["best_source"] == "model"


def test_choosing_weights_on_a_small_minival_is_refused_before_training(tmp_path, capsys):
    data = image_tree(tmp_path / "data")
    argv = ["train", "efficientnet_b0", "--data", str(data), "--out", str(tmp_path / "r"),
            *TINY, "--minival", "8", "--set", "report_weights=best"]  # fmt: skip
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert "report_weights 'best' picks the weights on minival, which has 8 images" in err
    assert err.count("\n") == 1 and not (tmp_path / "r" / "run.json").exists()


def test_resume_never_drops_a_bad_file_line(tmp_path):
    data = image_tree(tmp_path / "data")
    (data / "train" / "dark" / "empty.png").write_bytes(b"")
    run = train(tmp_path, "run", "--batch-size", "8", "--minival", "8", "--epochs", "1", data=data)
    listed = (run / "bad_files.txt").read_text().splitlines()
    assert len(listed) == 1 and listed[0].endswith("empty.png")
    earlier = str(data / "train" / "light" / "found-while-decoding.png")  # a decode-time find
    (run / "bad_files.txt").write_text(f"{earlier}\n{listed[0]}\n")
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert (run / "bad_files.txt").read_text().splitlines() == sorted([earlier, listed[0]])
    assert summary(run)["bad_files"] == 2


def test_missing_last_checkpoint_falls_back_to_previous(tmp_path):
    run = train(tmp_path, "run", *RECIPE, "--epochs", "2", "--set", "checkpoint_every=2")
    expected = [r["step"] for r in records(run, "step")]
    (run / "checkpoints" / "last.pt").unlink()  # previous.pt is from an earlier step
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert [r["step"] for r in records(run, "step")] == expected == [1, 2, 3, 4, 5, 6]
    assert summary(run)["steps"] == 6


def test_missing_checkpoints_after_training_are_refused(run, capsys):
    for name in ("last.pt", "previous.pt"):
        (run / "checkpoints" / name).unlink(missing_ok=True)
    err = refused(capsys, run)
    assert "last.pt and previous.pt are missing" in err
    assert records(run, "epoch")  # metrics kept


def test_study_report_accepts_runs_without_minival(tmp_path):
    from test_study import fake_train, tiny_study

    from effnet.study.runner import run_study

    def no_minival(*args, **kwargs):
        result = fake_train(*args, **kwargs)
        result.metrics["minival_top1"] = None
        return result

    r = run_study(tiny_study(), tmp_path / "s", train_fn=no_minival, log=lambda m: None)
    assert [row["minival_top1"] for row in r.rows] == [None, None]
    assert (tmp_path / "s" / "report.md").is_file()


def test_resume_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    assert main(["train", "--resume", str(tmp_path / "x"), "--epochs", "3"]) == 2
    assert "has no run.json (not a run folder)" in capsys.readouterr().err
    assert list((tmp_path / "x").iterdir()) == []


def test_python_resume_refuses_a_changed_recipe_field(run):
    from effnet.errors import EffnetError
    from effnet.train import train as train_fn
    from effnet.train.runfolder import saved_recipe

    before = snapshot(run)
    saved = saved_recipe(run)
    with pytest.raises(EffnetError, match=r"recipe's lr \(the run has 0.02, given 0.1\)"):
        train_fn(None, None, saved.replace(lr=0.1), run, resume=True, progress=False)
    with pytest.raises(EffnetError, match="takes the model from the run folder"):
        train_fn("efficientnet_b0", None, None, run, resume=True, progress=False)
    assert snapshot(run) == before


def test_a_run_made_before_run_json_still_resumes(tmp_path, capsys):
    """Runs made before the rename keep config.json: still read (with a note), and kept."""
    from effnet.train import runfolder

    run = tmp_path / "old"
    (run / "checkpoints").mkdir(parents=True)
    (run / "metrics.jsonl").write_text("")
    (run / "config.json").write_text('{"model": {}, "data": {}, "recipe": {}}')
    assert runfolder.config_path(run) == run / "config.json" and runfolder.is_run(run)
    assert runfolder.read_config(run)["model"] == {}
    assert "old name (now run.json)" in capsys.readouterr().err
    model = tmp_path / "model"  # a saved model's config.json is not a run's
    model.mkdir()
    (model / "config.json").write_text("{}")
    assert not runfolder.started(model)
