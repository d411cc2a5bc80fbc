"""The compound-scaled family in a study, and baselines compared at equal cost.

Runs use ``test_study.fake_train`` (top-1 grows with the network's multiply-adds and the
seed), so the pairing and the verdict can be checked against hand-derived signs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from test_study import tiny_study

from effnet.cli import main
from effnet.errors import EffnetError
from effnet.scaling import scale_phi
from effnet.study import plan
from effnet.study.compare import BaselineComparison, run_comparison, studies
from effnet.study.runner import study_jobs
from effnet.study.study import baseline_arch, macs

TINY = {"baseline_width": 0.25, "baseline_depth": 0.34, "resolution": 32,
        "baseline_fields": {"divisor": 4}}  # fmt: skip
DATA = {"subset": 200, "minival": 100, "workers": 0}


def test_family_is_the_baseline_scaled_as_b1_b2_are():
    s = tiny_study(sweeps={}, family=(0.0, 1.0, 2.0), epoch_multiples=(1.0, 2.0))
    points = plan(s)
    base = baseline_arch(s)
    assert [p.group for p in points] == ["family"] * 3
    assert points[0].arch.replace(name="") == base.replace(name="")
    for phi, p in zip((1.0, 2.0), points[1:], strict=True):
        want = scale_phi(base, phi, *s.coefficients)
        assert p.arch.replace(name="") == want.replace(name="")
        assert (p.depth, p.width, p.resolution_mult) == pytest.approx(
            (1.2**phi, 1.1**phi, 1.15**phi)
        )
        # the nominal target: (alpha beta^2 gamma^2)^phi x the baseline's cost
        assert p.target == pytest.approx(macs(base, 10, 1) * (1.2 * 1.1**2 * 1.15**2) ** phi)
    # every family point at T and again at 2T
    jobs = study_jobs(s, points)
    assert sorted(b for _, _, b in jobs) == [1.0] * 3 + [2.0] * 3


def comparison(**changes) -> BaselineComparison:
    base = dict(
        name="tiny",
        baselines={
            "b0": {"baseline": "efficientnet_b0", **TINY},
            "mv2": {"baseline": "mobilenet_v2", **TINY},
        },
        family=(0.0, 1.0),
        data=DATA,
        recipe_overrides={"epochs": 1, "batch_size": 50},
        seeds=(0, 1, 2),
    )
    base.update(changes)
    return BaselineComparison(**base)


def test_other_baselines_are_width_fitted_to_the_reference_cost():
    cfg = comparison()
    ss = studies(cfg)
    ref = macs(baseline_arch(ss["b0"]), 10, 1)
    other = macs(baseline_arch(ss["mv2"]), 10, 1)
    assert ss["b0"].baseline_width == 0.25  # the reference is not touched
    assert ss["mv2"].baseline_width != 0.25
    assert abs(other - ref) / ref < 0.05
    unmatched = studies(comparison(match_macs=False))
    assert unmatched["mv2"].baseline_width == 0.25
    far = macs(baseline_arch(unmatched["mv2"]), 10, 1)
    assert abs(far - ref) > abs(other - ref)  # fitting moved it closer


def test_comparison_writes_pairs_and_resumes(tmp_path, fake_env):
    out = tmp_path / "cmp"
    cfg = comparison(epoch_multiples=(1.0, 2.0))
    r = run_comparison(cfg, out, progress=False, log=lambda m: None)
    # 2 baselines x 2 phis x 3 seeds x 2 epoch multiples, each trained once
    assert len(fake_env.read_text().splitlines()) == 24
    for name in ("comparison.json", "results.json", "results.csv", "report.md", "compare.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "b0" / "report.md").is_file() and (out / "mv2" / "family.png").is_file()
    assert BaselineComparison.load(out / "comparison.json") == cfg
    res = json.loads((out / "results.json").read_text())
    comps = res["comparisons"]
    assert [(c["phi"], c["epoch_multiple"], c["a"], c["b"]) for c in comps] == [
        (0.0, 1.0, "b0", "mv2"), (1.0, 1.0, "b0", "mv2"),
        (0.0, 2.0, "b0", "mv2"), (1.0, 2.0, "b0", "mv2"),
    ]  # fmt: skip
    for c, phi_i in zip(comps, (0, 1, 0, 1), strict=True):
        # fake top-1 = 50 + 2 ln(MACs) + 0.1 seed: the seed cancels in the pairing
        ma = res["points"]["b0"][phi_i]["macs"]
        mb = res["points"]["mv2"][phi_i]["macs"]
        want = 2 * (math.log(ma) - math.log(mb))
        assert c["seeds"] == [0, 1, 2]
        assert c["mean"] == pytest.approx(want, abs=1e-9)
        assert c["verdict"] == ("b0 wins" if want > 0 else "mv2 wins")
    report = (out / "report.md").read_text()
    assert "Paired by seed against the reference" in report and "**Verdict:**" in report
    assert "The ranking **held** at every longer epoch multiple." in report
    assert len(r.rows["b0"]) == 12
    # resume: nothing trained again; another config is refused; no resume: refused
    assert main(["compare-baselines", "--resume", "--out", str(out), "--no-progress"]) == 0
    assert len(fake_env.read_text().splitlines()) == 24
    with pytest.raises(EffnetError, match="different comparison"):
        run_comparison(comparison(seeds=(0, 1)), out, resume=True, progress=False)
    with pytest.raises(EffnetError, match="already exists"):
        run_comparison(cfg, out, progress=False)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"baselines": {"a": {"baseline": "efficientnet_b0"}}}, "at least two baselines"),
        ({"baselines": {"a": {"baseline": "nope"}, "b": {"baseline": "mobilenet_v2"}}},
         "baseline 'a': unknown model 'nope'"),
        ({"baselines": {"a": {"baseline": "efficientnet_b0", "widht": 2},
                        "b": {"baseline": "mobilenet_v2"}}}, "unknown field(s) widht"),
        ({"baselines": {"a": {"baseline": "efficientnet_b0"}, "b": {"baseline": "mobilenet_v2"}},
          "reference": "c"}, "reference 'c' is not one of the baselines"),
        ({"baselines": {"a": {"baseline": "efficientnet_b0"}, "b": {"baseline": "mobilenet_v2"}},
          "family": []}, "at least one phi"),
    ],
)  # fmt: skip
def test_bad_comparison_is_one_line_and_makes_no_folder(tmp_path, capsys, doc, message):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(doc))
    out = tmp_path / "out"
    assert main(["compare-baselines", str(cfg), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_shipped_comparison_names_the_search_result():
    cfg = BaselineComparison.load(Path("examples/compare-baselines-fmnist.json"))
    assert cfg.reference_label == "found" and len(cfg.seeds) >= 3
    assert set(cfg.family) == {0.0, 1.0, 2.0}
    assert (
        cfg.baselines["found"]["baseline"] == "benchmarks/results/archsearch-fmnist/best-arch.json"
    )


def test_scale_takes_the_searched_coefficients(tmp_path, capsys):
    best = tmp_path / "best.json"
    best.write_text(json.dumps({"best": {"alpha": 1.0, "beta": 1.4, "gamma": 1.0}}))
    out = tmp_path / "phi1.json"
    args = ["scale", "--coefficients", str(best), "--phi", "1", "--save", str(out), "--json"]
    assert main(args) == 0
    got = json.loads(capsys.readouterr().out)
    assert (got["alpha"], got["beta"], got["gamma"]) == (1.0, 1.4, 1.0)
    assert got["width"] == pytest.approx(1.4) and got["depth"] == 1.0
    # bad input: one line, exit 2, nothing written
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    for argv, message in (
        (["--coefficients", str(bad)], "not a search-coefficients best.json"),
        (["--coefficients", str(tmp_path / "none.json")], "no such coefficients file"),
        (["--coefficients", str(best), "--alpha", "1.3"], "not both"),
    ):
        assert main(["scale", *argv, "--phi", "1", "--save", str(tmp_path / "x.json")]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.json").exists()
