"""A study spread over workers sharing an Optuna storage: each run exactly once, a dead
worker's run taken over, the report from any worker or from the storage alone.

Training is ``test_study.fake_train`` (through ``EFFNET_TRAIN_FN`` in worker processes).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import optuna
import pytest
from test_study import fake_train, tiny_study

from effnet.cli import main
from effnet.study.runner import run_study
from effnet.study.study_workers import job_table, open_queue, repair, run_workers

pytestmark = pytest.mark.slow  # study workers in several processes


def study_with_trainings():
    return tiny_study(
        sweeps={}, seeds=(0, 1), budget=4.0, methods=("width", "resolution", "compound"),
        epoch_multiples=(1.0, 2.0),
    )  # fmt: skip


def fresh_runs(log: Path) -> Counter:
    """run folder (relative to runs/) -> number of fresh training starts."""
    lines = log.read_text().splitlines() if log.exists() else []
    out: Counter = Counter()
    for line in lines:
        path, kind = line.rsplit(" ", 1)
        if kind == "fresh":
            out[path.split("/runs/", 1)[1]] += 1
    return out


def test_two_workers_run_each_job_once_and_both_write_the_report(tmp_path, fake_env):
    s = study_with_trainings()
    cfg = tmp_path / "s.json"
    s.save(cfg)
    out, storage = tmp_path / "out", str(tmp_path / "shared.journal")
    cmd = [sys.executable, "-m", "effnet", "study", str(cfg), "--storage", storage,
           "--out", str(out), "--no-progress"]  # fmt: skip
    procs = [subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    jobs = job_table(s)
    counts = fresh_runs(fake_env)
    assert set(counts) == set(jobs) and set(counts.values()) == {1}, counts
    assert len(jobs) == 4 * 2 * 2  # (baseline, width, resolution, compound) x 2 seeds x (T, 2T)
    both = [e for e in errs if "training" in e]
    assert len(both) == 2, "both workers trained"  # they shared the work
    results = json.loads((out / "results.json").read_text())
    assert len(results["runs"]) == len(jobs)
    assert set(results["comparisons"]) == {"1x", "2x"}
    for name in ("report.md", "results.csv", "table7.png", "curves.png", "study.json"):
        assert (out / name).stat().st_size > 0, name
    assert "curve" not in (out / "results.csv").read_text().splitlines()[0]


def test_a_dead_workers_job_is_taken_over_and_resumed(tmp_path, fake_env):
    s = study_with_trainings()
    out = tmp_path / "out"
    out.mkdir()
    (out / ".effnet-folder").write_text(json.dumps({"kind": "study"}))
    storage, ostudy, _ = open_queue(s, None, out)
    ids = list(job_table(s))
    assert repair(ostudy, storage, ids) == len(ids)  # a new study queues every job
    assert repair(ostudy, storage, ids) == 0  # and only once
    # a worker took the first job and died mid-run (its pid no longer exists)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    trial = ostudy.ask()
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", dead.pid)
    job = trial.suggest_categorical("job", ids)
    run_dir = out / "runs" / job
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"model": job_table(s)[job][0].arch.to_dict()}))
    rows, complete = run_workers(None, out, None, train_fn=fake_train, log=lambda m: None)
    assert complete and len(rows) == len(ids)
    lines = fake_env.read_text().splitlines()
    assert f"{run_dir} resume" in lines  # taken over from its folder, not started again
    assert fresh_runs(fake_env)[job] == 0
    states = Counter(t.state for t in ostudy.get_trials())
    assert states[optuna.trial.TrialState.FAIL] == 1
    assert states[optuna.trial.TrialState.COMPLETE] == len(ids)


def test_workers_pick_up_a_sequential_study_and_report_from_storage(tmp_path, fake_env, capsys):
    s = study_with_trainings()
    out = tmp_path / "out"
    s1 = s.replace(epoch_multiples=(1.0,))
    run_study(s1, out, train_fn=fake_train, progress=False, log=lambda m: None)
    first = sum(fresh_runs(fake_env).values())
    assert first == 8
    # the same folder continued by workers: the finished runs are not trained again
    rows, complete = run_workers(s, out, None, train_fn=fake_train, log=lambda m: None)
    assert complete and len(rows) == len(job_table(s))
    assert sum(fresh_runs(fake_env).values()) == len(job_table(s))  # only the 2x runs added
    (out / "report.md").unlink()
    assert main(["study", "--report", "--out", str(out)]) == 0
    assert "report:" in capsys.readouterr().out and (out / "report.md").is_file()


def test_worker_errors_are_one_line(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["study", "--worker", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no study to join in" in err and "\n" not in err
    assert not out.exists()  # nothing made for a study that is not there
    empty = str(tmp_path / "empty.journal")
    assert main(["study", "--report", "--storage", empty, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "give the study config: this storage holds studies none" in err and "\n" not in err
    s = tiny_study()
    cfg = tmp_path / "s.json"
    s.save(cfg)
    assert main(["study", str(cfg), "--processes", "0", "--out", str(out)]) == 2
    assert "--processes must be >= 1" in capsys.readouterr().err
    assert main(["study", str(cfg), "--workers", "0", "--out", str(out)]) == 2  # old spelling
    err = capsys.readouterr().err
    assert "--workers is deprecated here" in err and "--processes must be >= 1" in err
    other = tmp_path / "other.json"
    s.replace(seeds=(5,)).save(other)
    storage = str(tmp_path / "j.journal")
    open_queue(s, storage, tmp_path)
    assert main(["study", str(other), "--storage", storage, "--out", str(out)]) == 2
    assert "has a different config" in capsys.readouterr().err
