"""Folders the tool writes: --force replaces only what effnet made, and only after the new
config validated; config names never become paths; a second writer is refused by a lock;
search-coefficients never overwrites outputs it did not write, and checks its options
before any trial runs or any folder is made."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_study import fake_train, tiny_study

from effnet.cli import main
from effnet.errors import EffnetError
from effnet.rundir import LOCK, MARKER, ToolFolder, safe_name
from effnet.study.coefficients import SearchConfig
from effnet.study.runner import run_study
from effnet.study.search import run_search

TESTS = Path(__file__).parent


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (the lock file aside) -> sha256 of its bytes."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != LOCK
    }


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("effnet: error:") and "\n" not in err, err
    return err


def user_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "thesis.txt").write_text("a user's own file")
    (path / "grid.md").write_text("my notes, not a search's")
    (path / "best.json").write_text('{"mine": true}')
    return path


def made_study(tmp_path: Path) -> Path:
    out = tmp_path / "study"
    run_study(tiny_study(), out, train_fn=fake_train, log=lambda m: None)
    assert (out / MARKER).is_file()
    return out


# -- study --force --------------------------------------------------------------------------
def test_study_force_refuses_a_folder_effnet_did_not_make(tmp_path, capsys):
    out = user_folder(tmp_path / "mine")
    before = snapshot(out)
    cfg = tmp_path / "s.json"
    tiny_study().save(cfg)
    assert main(["study", str(cfg), "--out", str(out), "--force"]) == 2
    assert "not written by effnet" in one_line_error(capsys)
    assert snapshot(out) == before and not (out / MARKER).exists()


def test_study_force_replaces_only_after_the_new_study_validated(tmp_path, capsys):
    out = made_study(tmp_path)
    before = snapshot(out)
    bad = tmp_path / "bad.json"
    tiny_study(budget=0.5, sweeps={}).save(bad)  # loads; fails when planned
    assert main(["study", str(bad), "--out", str(out), "--force"]) == 2
    assert "no model fits a budget" in one_line_error(capsys)
    assert snapshot(out) == before
    (out / "extra.txt").write_text("dropped into the study folder")
    r = run_study(tiny_study(seeds=(5,)), out, force=True, train_fn=fake_train, log=lambda m: 0)
    assert r.trained == 2 and not (out / "extra.txt").exists()
    assert {p.name for p in (out / "runs").glob("*/*")} == {"seed5"}


@pytest.mark.parametrize("name", ["quick/../../../x", "..", "a/b", "a\\b", "x..y"])
def test_study_names_are_never_path_components(tmp_path, capsys, monkeypatch, name):
    victim = user_folder(tmp_path / "x")
    before = snapshot(victim)
    cfg = tmp_path / "s.json"
    cfg.write_text(json.dumps({**tiny_study().to_dict(), "name": name}))
    monkeypatch.chdir(tmp_path / "x")  # "runs/study-quick/../../../x" would reach tmp_path/x
    assert main(["study", str(cfg), "--force"]) == 2
    assert "cannot name a folder" in one_line_error(capsys)
    assert snapshot(victim) == before and not (victim / "runs").exists()
    with pytest.raises(EffnetError, match="cannot name a folder"):
        run_study(tiny_study(name=name), tmp_path / "o", force=True, train_fn=fake_train)
    assert not (tmp_path / "o").exists()


def test_safe_name_accepts_plain_names():
    assert safe_name("quick-b0_2.5", "name") == "quick-b0_2.5"


# -- search-coefficients --out -----------------------------------------------------------------
def tiny_search(**changes) -> SearchConfig:
    base = dict(
        name="tiny", baseline_width=0.25, baseline_depth=0.34, resolution=32,
        data={"subset": 100, "minival": 50, "workers": 0},
        recipe_overrides={"epochs": 1, "batch_size": 50}, step=0.2, tolerance=0.3, cost="nominal",
    )  # fmt: skip
    return SearchConfig(**{**base, **changes})


@pytest.mark.parametrize("force", [False, True])
def test_search_never_overwrites_outputs_it_did_not_write(tmp_path, capsys, force):
    out = user_folder(tmp_path / "mine")
    before = snapshot(out)
    cfg = tmp_path / "cfg.json"
    cfg.write_text(tiny_search().to_json())
    argv = ["search-coefficients", str(cfg), "--out", str(out)] + (["--force"] if force else [])
    assert main(argv) == 2
    assert "not written by effnet" in one_line_error(capsys)
    assert snapshot(out) == before


@pytest.mark.slow
def test_search_force_replaces_only_a_search_folder_effnet_made(tmp_path):
    out = tmp_path / "s"
    run_search(tiny_search(), out, train_fn=fake_train)
    before = snapshot(out)
    with pytest.raises(EffnetError, match="holds another search .*--force"):
        run_search(tiny_search(name="other"), out, train_fn=fake_train)
    assert snapshot(out) == before
    run_search(None, out, name="tiny", train_fn=fake_train)  # same search: resumes
    r = run_search(tiny_search(name="other"), out, train_fn=fake_train, force=True)
    assert r.complete and json.loads((out / MARKER).read_text())["name"] == "other"
    assert "other" in (out / "grid.md").read_text()


@pytest.mark.parametrize(
    "option, message",
    [
        (["--baseline", "no_such_model"], "no_such_model"),
        (["--baseline", "missing/arch.json"], "arch.json"),
        (["--image-size", "0"], "resolution must be >= 8"),
        (["--subset", "-5"], "subset must be a positive"),
        (["--epochs", "0"], "epochs"),
        (["--name", "../up"], "cannot name a folder"),
        (["--step", "1e-6"], "use a step >= "),
    ],
)
def test_bad_search_options_fail_before_any_trial_or_folder(tmp_path, capsys, option, message):
    out = tmp_path / "out"
    t = time.perf_counter()
    assert main(["search-coefficients", "--quick", "--out", str(out), *option]) == 2
    assert message in one_line_error(capsys)
    assert not out.exists() and time.perf_counter() - t < 20


# -- locks --------------------------------------------------------------------------------------
HOLD = (
    "import sys, time\n"
    "from effnet.rundir import ToolFolder\n"
    "f = ToolFolder(sys.argv[1], sys.argv[2])\n"
    "f.create()\n"
    "f.lock()\n"
    "print('locked', flush=True)\n"
    "time.sleep(120)\n"
)


@pytest.fixture
def holder():
    """``holder(folder, kind)``: a process that makes ``folder`` and holds its lock."""
    procs = []

    def start(folder: Path, kind: str) -> subprocess.Popen:
        p = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(folder), kind], stdout=subprocess.PIPE, text=True
        )
        procs.append(p)
        assert p.stdout.readline().strip() == "locked"
        return p

    yield start
    for p in procs:
        p.kill()
        p.wait()


def test_second_resume_of_a_run_is_refused_naming_the_holder(tmp_path, capsys, holder):
    run = tmp_path / "run"
    p = holder(run, "run")
    (run / "run.json").write_text('{"model": {}, "data": {}, "recipe": {}}')
    before = snapshot(run)
    assert main(["train", "--resume", str(run), "--no-progress"]) == 2
    err = one_line_error(capsys)
    assert f"pid {p.pid}" in err and "in use" in err
    assert snapshot(run) == before
    p.kill()
    p.wait()
    with ToolFolder(run, "run") as free:  # the kernel dropped the dead holder's lock
        free.lock()


def test_second_new_run_into_a_folder_being_written_is_refused(tmp_path, capsys, holder):
    from test_study import tiny_image_folder

    data = tiny_image_folder(tmp_path / "imgs")
    run = tmp_path / "run"
    p = holder(run, "run")  # a run that has not written its config yet
    argv = ["train", "efficientnet_b0", "--data", str(data), "--out", str(run), "--width",
            "0.25", "--depth", "0.34", "--image-size", "32", "--decode-size", "32",
            "--workers", "0", "--batch-size", "8", "--epochs", "1", "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    assert f"pid {p.pid}" in one_line_error(capsys)
    assert not (run / "run.json").exists()


@pytest.mark.parametrize("resume", [False, True])
def test_second_study_on_one_folder_is_refused(tmp_path, capsys, holder, monkeypatch, resume):
    out = tmp_path / "study"
    p = holder(out, "study")
    cfg = tmp_path / "s.json"
    tiny_study().save(cfg)
    if resume:
        tiny_study().save(out / "study.json")
    monkeypatch.setenv("EFFNET_TRAIN_FN", "test_study:fake_train")

    argv = ["study", str(cfg), "--out", str(out), "--no-progress"]
    assert main(argv + (["--resume"] if resume else [])) == 2
    assert f"pid {p.pid}" in one_line_error(capsys)
    assert not (out / "runs").exists()
