"""Scaling studies: config as data, budget matching, runner outputs and resume, bad input.

Runner tests use ``fake_train`` (same signature as ``effnet.train.train``; deterministic
"accuracy" from the architecture's multiply-adds) so they check the study machinery in
seconds; ``test_tiny_real_study`` runs the real trainer on a tiny model.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import two_class_tree

from effnet.arch import Architecture
from effnet.cli import main
from effnet.errors import EffnetError
from effnet.registry import get_arch, list_models
from effnet.study import Study, plan
from effnet.study.runner import run_study
from effnet.study.study import macs, unique_runs


def fake_train(model, data, recipe, out, *, resume=False, progress=True, model_overrides=None):
    """Stands in for effnet.train.train: logs the call, writes a run folder, returns metrics.

    ``FAKE_TRAIN_LOG``: file that gets one line per call ("<out> fresh|resume").
    ``FAKE_TRAIN_FAIL_ONCE``: substring of a run folder that raises on its first call.
    ``FAKE_TRAIN_SLEEP``: seconds each call takes.
    """
    out = Path(out)
    if resume:
        arch = Architecture.from_dict(json.loads((out / "run.json").read_text())["model"])
    else:
        assert not out.exists() or not any(out.iterdir()), f"would overwrite {out}"
        out.mkdir(parents=True, exist_ok=True)
        arch = model
        (out / "run.json").write_text(json.dumps({"model": arch.to_dict()}))
    log = os.environ.get("FAKE_TRAIN_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{out} {'resume' if resume else 'fresh'}\n")
    time.sleep(float(os.environ.get("FAKE_TRAIN_SLEEP", "0")))  # lets workers interleave
    fail = os.environ.get("FAKE_TRAIN_FAIL_ONCE")
    if fail and fail in str(out) and not (out / "failed-once").exists():
        (out / "failed-once").write_text("")
        raise RuntimeError("injected failure")
    m = macs(arch, 10, 1)
    top1 = min(99.0, 50 + 2 * math.log(m) + 0.1 * recipe.seed)  # percent, as train() reports
    epochs = max(1, round(recipe.epochs))
    with open(out / "metrics.jsonl", "w") as f:  # a learning curve rising to top1
        for e in range(1, epochs + 1):
            f.write(json.dumps({"kind": "epoch", "epoch": float(e),
                                "model_minival_top1": top1 - 5 / e}) + "\n")  # fmt: skip
    metrics = dict(
        model=arch.name, minival_top1=top1, test_top1=top1 - 1, test_top5=99.0,
        params=1000, macs=m, resolution=arch.resolution, train_time_s=0.01,
        epochs=recipe.epochs,
    )  # fmt: skip
    (out / "summary.json").write_text(json.dumps(metrics))
    return SimpleNamespace(run_dir=out, metrics=metrics)


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def tiny_study(**changes) -> Study:
    base = dict(
        name="tiny",
        baseline="efficientnet_b0",
        baseline_width=0.25,
        baseline_depth=0.34,
        resolution=32,
        data={"subset": 200, "minival": 100, "workers": 0},
        recipe_overrides={"epochs": 1, "batch_size": 50},
        sweeps={"width": (1.0, 1.5)},
        budget=None,
    )
    base.update(changes)
    return Study(**base)


def test_study_round_trips_through_json(tmp_path):
    s = tiny_study(
        seeds=(0, 1, 2),
        sweeps={"width": (1.0, 1.4), "depth": (1.0, 2.0), "resolution": (1.0, 1.3)},
        fig4_at=((1.0, 1.0), (2.0, 1.3)),
        fig4_width=(1.0, 1.8),
        budget=4.0,
        baseline_phi=-1.5,
    )
    assert Study.from_json(s.to_json()) == s
    s.save(tmp_path / "s.json")
    assert Study.load(tmp_path / "s.json") == s


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"sweeps": {"height": [1, 2]}}, "unknown sweep key(s) height"),
        ({"sweeps": {"width": [1, 0]}}, "sweeps.width multipliers must be positive, got 0"),
        ({"sweeps": {"depth": [-2]}}, "must be positive"),
        ({"fig4_at": [[1, -1]], "fig4_width": [1]}, "fig4_at multipliers must be positive"),
        ({"budget": 0}, "budget must be a positive multiple"),
        ({"speed": 3}, "unknown field(s) speed"),
        ({"epoch_multiples": [2, 1]}, "epoch_multiples must start at 1"),
        ({"epoch_multiples": [1, 2, 2]}, "and increase"),
        ({"epoch_multiples": []}, "epoch_multiples must start at 1"),
        ({"seeds": [0, 1, 0]}, "seeds must be a non-empty list of distinct ints"),
        ({"seeds": []}, "seeds must be a non-empty list"),
        ({"baseline_fields": {"divisor": 0}}, "baseline_fields: efficientnet_b0: divisor must"),
        ({"baseline_fields": {"depth_rounding": "up"}}, "depth_rounding must be one of ceil"),
        ({"baseline_fields": {"stem": {"strides": 1}}}, "baseline_fields: "),
    ],
)
def test_bad_study_config_is_one_line_exit_2(tmp_path, capsys, changes, message):
    cfg = json.loads(tiny_study().to_json())
    cfg.update(changes)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(cfg))
    assert main(["study", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("effnet: error:") and message in err and "\n" not in err
    assert not (tmp_path / "o").exists()


def test_budget_no_model_can_fit_is_an_error():
    # half the baseline's multiply-adds: scaling up by any method only adds cost
    with pytest.raises(EffnetError, match="no model fits a budget"):
        plan(tiny_study(budget=0.5, sweeps={}))


# B0 at 64 px scaled to 4x its multiply-adds (Table 7's factor); shared so that the
# multiply-add cache makes the second plan free
B0_AT_64 = Study(name="b0", resolution=64, budget=4.0)


def check_budget(study: Study) -> list:
    points = [p for p in plan(study) if p.group == "table7"]
    assert [p.method for p in points] == [
        "baseline", "depth", "width", "resolution", "compound", "compound-paper"
    ]  # fmt: skip
    base, *scaled = points
    for p in scaled:
        assert abs(p.relative_error) <= 0.05, (p.method, p.relative_error)
        assert p.macs == macs(p.arch, 10, 1)  # the reported figure is the model's own
    return points


@pytest.mark.slow
def test_budget_matching_b0_within_5_percent():
    base, depth, width, res, comp, comp_paper = check_budget(B0_AT_64)
    # one dimension moves at a time; compound moves all three by alpha^phi, beta^phi, gamma^phi
    assert (depth.width, depth.resolution_mult) == (1.0, 1.0) and depth.depth > 2.5
    assert (width.depth, width.resolution_mult) == (1.0, 1.0) and 1.7 < width.width < 2.3
    assert (res.depth, res.width) == (1.0, 1.0) and res.arch.resolution > 110
    phi = math.log(comp.depth) / math.log(1.2)
    assert comp.width == pytest.approx(1.1**phi) and comp.resolution_mult == pytest.approx(
        1.15**phi
    )


@pytest.mark.skipif("mobilenet_v2" not in list_models(), reason="no mobilenet_v2 registered")
@pytest.mark.slow
def test_budget_matching_other_family_within_5_percent():
    check_budget(Study(name="mv2", baseline="mobilenet_v2", resolution=64, budget=4.0))


@pytest.mark.parametrize("name", ["efficientnet_b0", "mobilenet_v1", "mobilenet_v2", "resnet50"])
def test_macs_equal_torch_flop_counter(name):
    """The hook-based counter equals torch's exact FlopCounterMode (FLOPs / 2)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from effnet.model import build

    for arch in (get_arch(name).replace(resolution=96), tiny_study_arch()):
        with torch.device("meta"):
            model = build(arch, num_classes=10, in_chans=1).eval()
            x = torch.empty(1, 1, arch.resolution, arch.resolution)
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                model(x)
        assert macs(arch, 10, 1) == counter.get_total_flops() // 2


def tiny_study_arch() -> Architecture:
    return plan(tiny_study())[1].arch


def test_tiny_study_writes_everything_and_resumes(tmp_path, capsys):
    log = tmp_path / "calls.log"
    os.environ["FAKE_TRAIN_LOG"] = str(log)
    try:
        out = tmp_path / "study"
        s = tiny_study(seeds=(0, 1))
        r = run_study(s, out, train_fn=fake_train, log=lambda m: None)
        assert len(calls(log)) == 4 and r.trained == 4
        for name in ("study.json", "plan.json", "results.csv", "results.json", "report.md",
                     "fig3.png"):  # fmt: skip
            assert (out / name).stat().st_size > 0, name
        assert Study.load(out / "study.json") == s
        rows = json.loads((out / "results.json").read_text())["runs"]
        assert len(rows) == 4 and {r["seed"] for r in rows} == {0, 1}
        report = (out / "report.md").read_text()
        assert "Figure 3 analogue" in report and "± " in report
        # never overwritten without --resume / --force
        with pytest.raises(EffnetError, match="already exists"):
            run_study(s, out, train_fn=fake_train, log=lambda m: None)
        # resume: nothing retrained
        r = run_study(s, out, resume=True, train_fn=fake_train, log=lambda m: None)
        assert r.trained == 0 and len(calls(log)) == 4
        # an interrupted run (no summary.json yet) is resumed, the rest kept
        victim = out / "runs" / rows[0]["key"] / "seed1" / "summary.json"
        victim.unlink()
        r = run_study(None, out, resume=True, train_fn=fake_train, log=lambda m: None)
        assert r.trained == 1 and calls(log)[-1].endswith("seed1 resume")
        # --force starts over
        r = run_study(s, out, force=True, train_fn=fake_train, log=lambda m: None)
        assert r.trained == 4
    finally:
        del os.environ["FAKE_TRAIN_LOG"]


@pytest.mark.slow
def test_table7_report_has_verdict(tmp_path):
    s = B0_AT_64.replace(seeds=(0, 1))
    run_study(s, tmp_path / "t7", train_fn=fake_train, log=lambda m: None)
    report = (tmp_path / "t7" / "report.md").read_text()
    assert "Table 7 analogue" in report and "**Verdict.**" in report
    assert (tmp_path / "t7" / "table7.png").stat().st_size > 0
    rows = json.loads((tmp_path / "t7" / "results.json").read_text())["models"]
    assert len(rows) == 6 and all(r["n"] == 2 for r in rows)  # compound-paper: its own model


def test_cli_refuses_existing_folder(tmp_path, capsys):
    out = tmp_path / "s"
    out.mkdir()
    (out / "keep.txt").write_text("user file")
    cfg = tmp_path / "s.json"
    tiny_study().save(cfg)
    assert main(["study", str(cfg), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "user file"


def tiny_image_folder(root: Path) -> Path:
    """Two classes (dark / bright squares), 16 train, 4 val, 4 test images each, 32x32 PNG."""
    return two_class_tree(root, {"train": 16, "val": 4, "test": 4})


@pytest.mark.slow
def test_tiny_real_study(tmp_path):
    """Two points trained for a few steps by the real effnet.train.train; then resumed."""
    from effnet.study.study import data_shape

    data = {"source": str(tiny_image_folder(tmp_path / "imgs")), "minival": 0, "workers": 0,
            "image_size": 32}  # fmt: skip
    s = tiny_study(
        data=data,
        recipe_overrides={"epochs": 1, "batch_size": 8, "ema": False, "log_every": 1},
    )
    assert data_shape(s.data) == (2, 3)
    out = tmp_path / "real"
    r = run_study(s, out, progress=False, log=lambda m: None)
    assert r.trained == 2 and len(r.rows) == 2
    archs = {p.key: p.arch for p in plan(s)}
    for row in r.rows:
        assert 0.0 <= row["test_top1"] <= 100.0
        assert row["macs"] == macs(archs[row["key"]], 2, 3)  # trainer and planner agree
        assert (out / row["run_dir"] / "summary.json").is_file()
    for name in ("study.json", "plan.json", "results.csv", "results.json", "report.md",
                 "fig3.png"):  # fmt: skip
        assert (out / name).stat().st_size > 0, name
    r = run_study(None, out, resume=True, progress=False, log=lambda m: None)
    assert r.trained == 0


def test_identical_networks_share_one_run():
    """Width 1.01 rounds to the same channels as 1.0 (divisor 8): one run, two points."""
    points = plan(tiny_study(sweeps={"width": (1.0, 1.01, 1.5)}))
    assert [p.width for p in points] == [1.0, 1.01, 1.5]
    assert points[1].arch.stages == points[0].arch.stages
    assert points[1].key == points[0].key != points[2].key
    assert [p.width for p in unique_runs(points)] == [1.0, 1.5]


def test_convergence_check_writes_every_file_and_resumes(tmp_path):
    """Table 7 at T and 2T with 3 seeds: 5 models x 3 seeds x 2 budgets, a paired interval,
    the ranking at both budgets, learning curves; a second call trains nothing."""
    log = tmp_path / "calls.log"
    os.environ["FAKE_TRAIN_LOG"] = str(log)
    try:
        s = tiny_study(sweeps={}, budget=4.0, seeds=(0, 1, 2), epoch_multiples=(1.0, 2.0),
                       methods=("depth", "width", "resolution", "compound"))  # fmt: skip
        out = tmp_path / "conv"
        r = run_study(s, out, train_fn=fake_train, log=lambda m: None)
        assert r.trained == len(calls(log)) == 5 * 3 * 2
        longer = [c for c in calls(log) if "/x2/seed" in c]
        assert len(longer) == 15
        for name in ("results.csv", "results.json", "report.md", "table7.png", "curves.png"):
            assert (out / name).stat().st_size > 0, name
        results = json.loads((out / "results.json").read_text())
        assert {r["epoch_multiple"] for r in results["runs"]} == {1.0, 2.0}
        c = results["comparisons"]["1x"]
        assert c["a"] == "compound" and c["seeds"] == [0, 1, 2]
        assert c["t_low"] <= c["mean"] <= c["t_high"]
        report = (out / "report.md").read_text()
        assert "2x the recipe's epochs" in report and "**Convergence check.**" in report
        assert "the ranking held" in report  # fake accuracy rises with cost at both budgets
        assert "t-interval" in report and "paired by seed, n = 3" in report
        assert "**Warning:** the baseline runs at 32 px, above the 28 px" in report
        assert "What this run can conclude" in report  # 3 seeds < 5
        r = run_study(None, out, resume=True, train_fn=fake_train, log=lambda m: None)
        assert r.trained == 0 and len(calls(log)) == 30
    finally:
        del os.environ["FAKE_TRAIN_LOG"]


def test_fair_proxy_below_native_resolution():
    """A 16 px baseline (Fashion-MNIST holds 28) with a full-size stem, channels in
    multiples of 4 and layers rounded to the nearest: every method fits 3.45x within 5%,
    the resolution point stays below 28 px, and compound's effective multipliers stay near
    its nominal balance (with the paper's ceil rounding, depth alone jumps to 1.44)."""
    from effnet.scaling import effective_multipliers

    fields = {"divisor": 4, "depth_rounding": "round", "stem": {"stride": 1}}
    s = Study(name="fair", baseline_width=0.35, resolution=16, baseline_fields=fields,
              budget=3.45)  # fmt: skip
    points = {p.method: p for p in plan(s)}
    base = points["baseline"].arch
    assert (base.stem.stride, base.divisor, base.depth_rounding) == (1, 4, "round")
    assert points["resolution"].arch.resolution == 27
    assert all(st.out_channels % 4 == 0 for st in points["width"].arch.stages)
    d, w, r = effective_multipliers(base, points["compound"].arch)
    assert abs(d - 1.2) < 0.05 and abs(w - 1.1) < 0.05 and abs(r - 1.15) < 0.05
    assert points["compound-paper"].key == points["compound"].key  # the same network here
    # ranked once, under both names; the verdict compares compound with the best single one
    from effnet.study.verdict import compound_vs_best_single, ranking

    t7 = [p for p in plan(s) if p.group == "table7"]
    top1 = {"baseline": 70, "depth": 71, "width": 73, "resolution": 72, "compound": 74}
    rows = [dict(key=p.key, seed=seed, test_top1=top1[p.method] + seed)
            for seed in (0, 1) for p in t7 if p.method in top1]  # fmt: skip
    names = [m for m, _ in ranking(t7, rows)]
    assert names == ["compound = compound-paper", "width", "resolution", "depth"]
    c = compound_vs_best_single(t7, rows)
    assert (c.a, c.b, c.mean) == ("compound", "width", 1.0)


def test_example_studies_load_and_make_run_is_the_full_study_at_a_smaller_scale():
    """`make run` (quick) is seed 0 at T of the committed full study: same baseline, data,
    recipe and budget; the full study adds seeds 0-4 and the 2T convergence check."""
    from effnet.study import quick

    root = Path(__file__).resolve().parents[1] / "examples"
    studies = {p.name: Study.load(p) for p in sorted(root.glob("study-*.json"))}
    assert {"study-fmnist.json", "study-fmnist-fair.json", "study-fmnist-fair-figs.json"} <= set(
        studies
    )
    full = studies["study-fmnist-fair.json"]
    assert full.seeds == (0, 1, 2, 3, 4) and full.epoch_multiples == (1.0, 2.0)
    same = full.replace(name="quick", seeds=(0,), epoch_multiples=(1.0,))
    assert same == quick()
    figs = studies["study-fmnist-fair-figs.json"]
    assert (
        figs.budget is None
        and figs.fig4_at
        and set(figs.sweeps) == {"width", "depth", "resolution"}
    )
    assert figs.baseline_fields == full.baseline_fields and figs.resolution == full.resolution
