"""The architecture search: its space, its objective, workers sharing one storage, resume.

Training is replaced by ``test_study.fake_train`` (through ``EFFNET_TRAIN_FN`` in worker
processes), so the search tests check the machinery, not accuracy.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from test_study import fake_train

from effnet.archsearch import objective as obj
from effnet.archsearch.config import ArchSearchConfig
from effnet.archsearch.search import run_archsearch
from effnet.archsearch.space import (
    SearchSpace,
    arch_from_params,
    choice_table,
    default_space,
    params_of,
    reachable_macs,
    sample,
)
from effnet.cli import main
from effnet.errors import EffnetError
from effnet.profile import arch_macs

SHAPE = (10, 1)  # Fashion-MNIST: 10 classes, 1 channel

TINY_SPACE = {
    "name": "tiny",
    "resolution": 16,
    "stem_out_channels": [8],
    "head_out_channels": [0, 32],
    "fields": {"divisor": 4},
    "stages": [
        {"stride": 2, "out_channels": [8, 12], "layers": [1, 2], "kernel": [3, 5],
         "expand": [1, 4], "se": [0.0, 0.25]},
        {"stride": 2, "out_channels": [16, 24], "layers": [1, 2], "kernel": [3],
         "expand": [4, 6], "se": [0.0]},
    ],
}  # fmt: skip

# every block type in one space: the reachable range must hold for all of them
MIXED_SPACE = {
    **TINY_SPACE,
    "name": "mixed",
    "stages": [
        {**s, "block": ["mbconv", "fused_mbconv", "conv", "dsconv", "bottleneck"]}
        for s in TINY_SPACE["stages"]
    ],
}


def random_params(space: SearchSpace, rng: random.Random) -> dict:
    return {k: rng.choice(v) for k, v in choice_table(space).items()}


# -- the space ------------------------------------------------------------------------------
def test_default_space_holds_the_quick_studys_baseline():
    from effnet.study.presets import quick
    from effnet.study.study import baseline_arch

    space = default_space()
    base = baseline_arch(quick())
    params = params_of(space, base)  # raises when B0 at 0.35 width is not a point of it
    assert arch_from_params(space, params, base.name) == base
    low, high = reachable_macs(space, SHAPE)
    assert low < arch_macs(base, *SHAPE) < high


@pytest.mark.parametrize("raw", [TINY_SPACE, MIXED_SPACE], ids=["mbconv", "every-block"])
def test_sampled_architectures_build_and_cost_within_the_reachable_range(raw):
    space = SearchSpace.from_dict(raw)
    low, high = reachable_macs(space, SHAPE)
    rng = random.Random(0)
    seen = []
    for _ in range(15):
        arch = arch_from_params(space, random_params(space, rng))
        seen.append(arch_macs(arch, *SHAPE))  # builds it on the meta device
    assert all(low <= m <= high for m in seen), (low, high, seen)
    smallest = {k: min(v) for k, v in choice_table(space).items() if not k.endswith("block")}
    if raw is TINY_SPACE:  # one block type: the bounds are the extreme choices themselves
        lo_arch = arch_from_params(space, {**smallest, "s1_block": "mbconv", "s2_block": "mbconv"})
        assert arch_macs(lo_arch, *SHAPE) == low


def test_optuna_samples_are_reproducible_from_their_params(tmp_path):
    space = default_space()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    low, high = reachable_macs(space, SHAPE)
    for i in range(15):
        trial = study.ask()
        arch = sample(space, trial, name=f"s{i}")
        assert set(trial.params) == set(choice_table(space))  # stable names
        assert arch_from_params(space, trial.params, f"s{i}") == arch
        assert low <= arch_macs(arch, *SHAPE) <= high
        study.tell(trial, 0.0)
    arch.save(tmp_path / "a.json")
    assert main(["describe", str(tmp_path / "a.json")]) == 0


def test_space_json_round_trips_and_refuses_bad_files():
    space = SearchSpace.from_dict(TINY_SPACE)
    assert SearchSpace.from_json(space.to_json()) == space
    stage = TINY_SPACE["stages"][0]
    bad = {
        "unknown field": ({**TINY_SPACE, "depth": 2}, "unknown field(s) depth"),
        "unknown block": (
            {**TINY_SPACE, "stages": [{**stage, "block": ["mbconv", "attention"]}]},
            "stage 1: unknown block type 'attention'",
        ),
        "empty space": ({**TINY_SPACE, "stages": []}, "no stages (the space is empty)"),
        "empty choice": ({**TINY_SPACE, "stages": [{**stage, "kernel": []}]}, "kernel has no"),
        "even kernel": (
            {**TINY_SPACE, "stages": [stage, {**stage, "kernel": [3, 4]}]},
            "stage 2: kernel must be a positive odd number, got 4",
        ),
        "not a list": ({**TINY_SPACE, "head_out_channels": 32}, "must be a list"),
    }
    for case, (raw, words) in bad.items():
        with pytest.raises(EffnetError) as e:
            SearchSpace.from_dict(raw)
        assert words in str(e.value) and "\n" not in str(e.value), case
    with pytest.raises(EffnetError, match="not one of"):
        arch_from_params(space, {**random_params(space, random.Random(0)), "s1_kernel": 7})


# -- the objective --------------------------------------------------------------------------
def test_reward_against_hand_computed_values():
    t = 400e6  # the paper's T
    assert obj.reward(0.8, 2 * t, t) == pytest.approx(0.8 * math.exp(-0.07 * math.log(2)))
    assert obj.reward(0.8, 2 * t, t) == pytest.approx(0.76211, abs=1e-5)
    assert obj.reward(0.8, t / 2, t) == pytest.approx(0.83977, abs=1e-5)  # 0.8 x 2^0.07
    assert obj.reward(0.8, t, t) == 0.8
    assert obj.reward(0.75, 3 * t, t, w=-0.5) == pytest.approx(0.75 / math.sqrt(3))
    # twice the cost needs 2^0.07 = 1.0497x the accuracy for the same reward
    assert obj.reward(0.8 * 2**0.07, 2 * t, t) == pytest.approx(obj.reward(0.8, t, t))
    # hard constraint: w = 0 at or under T, -1 above
    assert obj.hard_reward(0.8, t / 2, t) == 0.8
    assert obj.hard_reward(0.8, t, t) == 0.8
    assert obj.hard_reward(0.8, 2 * t, t) == pytest.approx(0.4)
    assert obj.hard_reward(0.9, 4 * t, t) == pytest.approx(0.225)
    for hard in (False, True):
        r = obj.score(0.7, 1.5 * t, t, -0.07, hard)
        assert obj.iso_accuracy(r, 1.5 * t, t, -0.07, hard) == pytest.approx(0.7)


@pytest.mark.parametrize(
    "args,words",
    [
        ((0.8, 1e6, 0.0), "target multiply-adds must be positive"),
        ((0.8, 1e6, -4e6), "target multiply-adds must be positive"),
        ((0.8, 1e6, float("nan")), "target multiply-adds must be positive"),
        ((0.8, 1e6, 1e6, 0.1), "w must be <= 0"),
        ((-0.1, 1e6, 1e6), "accuracy must be"),
        ((0.8, 0, 1e6), "multiply-adds must be positive"),
    ],
)
def test_reward_refuses_bad_inputs_in_one_line(args, words):
    with pytest.raises(EffnetError, match=words):
        obj.reward(*args)


# -- the command's bad input ----------------------------------------------------------------
@pytest.mark.parametrize(
    "case,words",
    [
        (["--quick", "--target-flops", "400M"], "outside what the space reaches: smallest"),
        (["--quick", "--target-flops", "1k"], "outside what the space reaches: smallest"),
        (["--quick", "--target-flops", "lots"], "not a number of multiply-adds"),
        (["--quick", "--target-flops", "0"], "must be a positive number"),
        (["--quick", "--w", "0.5"], "w must be <= 0"),
        (["--quick", "--trials", "2.5"], "--trials: not a whole number"),
        (["--target-flops", "1M", "--space", "{empty}"], "no stages (the space is empty)"),
        (["--target-flops", "1M", "--space", "{block}"], "unknown block type 'transformer'"),
        (["--target-flops", "1M", "--space", "{nochoice}"], "kernel has no choices"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case, words):
    stage = {"stride": 2, "out_channels": [8]}
    files = {
        "empty": {**TINY_SPACE, "stages": []},
        "block": {**TINY_SPACE, "stages": [{**stage, "block": ["transformer"]}]},
        "nochoice": {**TINY_SPACE, "stages": [{**stage, "kernel": []}]},
    }
    for key, raw in files.items():
        (tmp_path / f"{key}.json").write_text(json.dumps(raw))
    argv = [a.format(**{k: str(tmp_path / f"{k}.json") for k in files}) for a in case]
    out = tmp_path / "out"
    assert main(["search-architecture", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and words in err, err
    assert not out.exists()  # refused before any folder is made


def test_target_error_states_the_reachable_range(capsys, tmp_path):
    low, high = reachable_macs(default_space(), SHAPE)
    assert main(["search-architecture", "--quick", "--target-flops", "1G",
                 "--out", str(tmp_path / "o")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert f"smallest {low / 1e6:.4g}M, largest {high / 1e6:.4g}M" in err


# -- the search -----------------------------------------------------------------------------
def tiny_config(**changes) -> ArchSearchConfig:
    base = dict(
        name="tiny", space=TINY_SPACE, data={"subset": 100, "minival": 50, "workers": 0},
        recipe_overrides={"epochs": 1}, target_macs=30_000.0, trials=5, startup_trials=3,
        confirm_top=1,
    )  # fmt: skip
    return ArchSearchConfig(**{**base, **changes})


def starts(log: Path) -> Counter:
    """(run folder, fresh|resume) -> how many times the trainer was called so."""
    lines = log.read_text().splitlines() if log.exists() else []
    return Counter((str(Path(p).relative_to(Path(p).parents[1])), k) for p, k in
                   (line.split() for line in lines))  # fmt: skip


def complete(storage: str, name: str) -> list:
    study = optuna.load_study(study_name=name, storage=_journal(storage))
    return study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))


def _journal(path: str):
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    return JournalStorage(JournalFileBackend(path))


def test_hard_constraint_prunes_candidates_that_cannot_win(tmp_path, fake_env, monkeypatch):
    monkeypatch.setenv("FAKE_TRAIN_SLEEP", "0")
    cfg = tiny_config(hard=True, trials=6, sampler="random", confirm_top=0)
    r = run_archsearch(cfg, tmp_path / "s", train_fn=fake_train)
    assert r.complete and sum(x["state"] == "complete" for x in r.rows) == 6
    assert any(x["state"] == "pruned" for x in r.rows)  # the sampler is seeded: it happens
    best = max(x["reward"] for x in r.rows if x["state"] == "complete")
    for x in r.rows:
        if x["state"] == "pruned":  # never trained; even 100% would have scored below
            assert x["upper_bound"] < best and x["macs"] > cfg.target_macs
            assert not (tmp_path / "s" / "trials" / str(x["trial"])).exists()
    for name in ("trials.csv", "best.json", "best-arch.json", "pareto.png", "report.md"):
        assert (tmp_path / "s" / name).stat().st_size > 0
    assert main(["describe", str(tmp_path / "s" / "best-arch.json")]) == 0


@pytest.mark.slow  # worker processes
def test_two_workers_share_a_journal_and_train_each_trial_once(tmp_path, fake_env, capsys):
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(tiny_config(trials=6).to_json())
    journal, out = str(tmp_path / "shared.journal"), str(tmp_path / "out")
    cmd = [sys.executable, "-m", "effnet", "search-architecture", str(cfg_path),
           "--storage", journal, "--out", out]  # fmt: skip
    procs = [subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errs = [p.communicate(timeout=240)[1] for p in procs]  # both race to create the study
    assert [p.returncode for p in procs] == [0, 0], errs
    calls = starts(fake_env)
    assert set(calls.values()) == {1} and all(kind == "fresh" for _, kind in calls)
    assert len(complete(journal, "tiny")) == 6
    rows = list(csv_rows(Path(out) / "trials.csv"))
    assert sum(r["state"] == "complete" for r in rows) == 6
    trained = {p for p, _ in calls if p.startswith("trials/")}
    reused = {r["trial"] for r in rows if r["same_as"]}
    assert len(trained) + len(reused) == 6
    assert {p for p, _ in calls if p.startswith("confirm/")} == {"confirm/" + rows[0]["trial"]}
    # a third worker joining the finished search trains nothing and writes the same best
    argv = ["search-architecture", "--join", "--name", "tiny", "--storage", journal]
    assert main([*argv, "--out", out]) == 0
    assert (
        starts(fake_env) == calls and "best: trial " + rows[0]["trial"] in capsys.readouterr().out
    )


def csv_rows(path: Path):
    import csv

    with open(path) as f:
        yield from csv.DictReader(f)


@pytest.mark.slow  # a worker process, killed mid-trial
def test_interrupted_search_resumes_without_retraining(tmp_path, fake_env, monkeypatch):
    cfg = tiny_config(trials=4, sampler="random", confirm_top=0)
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(cfg.to_json())
    out = tmp_path / "out"
    monkeypatch.setenv("FAKE_TRAIN_SLEEP", "2")
    cmd = [sys.executable, "-m", "effnet", "search-architecture", str(cfg_path), "--out", str(out)]
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    while sum(starts(fake_env).values()) < 2:  # trial 0 done, trial 1 training
        assert p.poll() is None, p.communicate()[1]
        time.sleep(0.1)
    p.kill()
    p.communicate()
    monkeypatch.setenv("FAKE_TRAIN_SLEEP", "0")
    r = run_archsearch(cfg, out, train_fn=fake_train)
    assert r.complete and sum(x["state"] == "complete" for x in r.rows) == 4
    calls = starts(fake_env)
    assert calls[("trials/0", "fresh")] == 1 and ("trials/0", "resume") not in calls
    assert calls[("trials/1", "fresh")] == 1 and calls[("trials/1", "resume")] == 1
    assert all(n == 1 for n in calls.values())
    retry = [x for x in r.rows if x["retry_of"] == 1]
    assert len(retry) == 1 and retry[0]["state"] == "complete"
    before = sum(calls.values())
    again = run_archsearch(cfg, out, train_fn=fake_train)  # finished: trains nothing
    assert sum(starts(fake_env).values()) == before and again.best == r.best
    with pytest.raises(EffnetError, match="different config"):
        run_archsearch(cfg.replace(w=-0.1), out, train_fn=fake_train)


def test_shipped_search_is_the_quick_proxy_run_longer():
    from effnet.archsearch.config import ArchSearchConfig, quick_config

    shipped = ArchSearchConfig.load(Path("examples/archsearch-fmnist.json"))
    longer = quick_config().replace(name="fmnist", trials=150, startup_trials=16, confirm_top=3)
    assert shipped == longer


def test_committed_search_result_is_what_it_says():
    """benchmarks/results/archsearch-fmnist: the found network rebuilds from its trial's
    choices, costs what best.json says, and 150 trials completed."""
    import csv

    from effnet.arch import Architecture
    from effnet.archsearch.space import arch_from_params, choice_table, default_space
    from effnet.study.study import macs

    folder = Path("benchmarks/results/archsearch-fmnist")
    best = json.loads((folder / "best.json").read_text())
    arch = Architecture.load(folder / "best-arch.json")
    assert macs(arch, 10, 1) == best["best"]["macs"]
    space = default_space()
    rebuilt = arch_from_params(space, {k: best["best"][k] for k in choice_table(space)})
    assert rebuilt.replace(name="") == arch.replace(name="")
    with open(folder / "trials.csv") as f:
        states = [r["state"] for r in csv.DictReader(f)]
    assert states.count("complete") == best["trials"] == 150
