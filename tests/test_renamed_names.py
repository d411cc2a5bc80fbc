"""One meaning per name: a *budget* is a model's cost (multiply-adds, parameters, ms);
training length is a multiple of the recipe's epochs (``epoch_multiples``); a wall-clock
cap is a time limit. The old spellings are read for one release, with a notice."""

from __future__ import annotations

import json

import pytest

from effnet.archsearch.config import ArchSearchConfig
from effnet.cli import main
from effnet.errors import EffnetError
from effnet.study import Study
from effnet.study.compare import BaselineComparison
from effnet.study.report import aggregate, at_epoch_multiple, epoch_multiple_of

OLD_STUDY = {"name": "s", "data": {"subset": 100}, "budget": None, "sweeps": {"width": [1.0]}}


def test_a_study_file_with_training_budgets_reads_as_epoch_multiples(tmp_path, capsys):
    path = tmp_path / "study.json"
    path.write_text(json.dumps({**OLD_STUDY, "training_budgets": [1, 2]}))
    s = Study.load(path)
    assert s.epoch_multiples == (1.0, 2.0)
    err = capsys.readouterr().err
    assert "'training_budgets' is now 'epoch_multiples'" in err
    # saved again, it holds only the new name, and it is the same study
    s.save(tmp_path / "again.json")
    saved = json.loads((tmp_path / "again.json").read_text())
    assert "training_budgets" not in saved and saved["epoch_multiples"] == [1.0, 2.0]
    assert Study.load(tmp_path / "again.json") == s


def test_old_and_new_name_together_is_a_one_line_error():
    with pytest.raises(EffnetError, match="give 'epoch_multiples' or its old name"):
        Study.from_dict({**OLD_STUDY, "training_budgets": [1, 2], "epoch_multiples": [1]})


def test_a_comparison_and_a_search_config_read_their_old_names():
    c = BaselineComparison.from_dict(
        {"name": "c", "baselines": {"a": {"baseline": "efficientnet_b0"},
                                     "b": {"baseline": "mobilenet_v2"}},
         "family": [0.0], "training_budgets": [1, 2]}
    )  # fmt: skip
    assert c.epoch_multiples == (1.0, 2.0)
    a = ArchSearchConfig.from_dict({"name": "a", "target_macs": 1e6, "confirm_budget": 3.0})
    assert a.confirm_epoch_multiple == 3.0


def test_rows_written_before_the_rename_count_at_their_epoch_multiple():
    """Rows stored in an older study's journal say ``training_budget``."""
    same = dict(key="k", minival_top1=None, macs=1, params=1, resolution=28, train_time_s=1.0)
    old = [dict(same, seed=0, test_top1=0.5, training_budget=2.0)]
    new = [dict(same, seed=1, test_top1=0.7, epoch_multiple=2.0)]
    rows = old + new
    assert [epoch_multiple_of(r) for r in rows] == [2.0, 2.0]
    assert at_epoch_multiple(rows, 1.0) == []
    assert aggregate(rows, 2.0)["k"]["test_mean"] == pytest.approx(0.6)


def test_with_budget_is_the_old_name_of_with_training():
    s = Study.from_dict(OLD_STUDY)
    with pytest.warns(DeprecationWarning, match="with_training"):
        old = s.with_budget(seeds=[0, 1], training_budgets=(1.0, 2.0))
    assert old == s.with_training(seeds=[0, 1], epoch_multiples=(1.0, 2.0))


def test_the_old_cli_flag_still_works_and_says_the_new_one(tmp_path, capsys):
    """--training-budgets is read as --epoch-multiples: the same bad value gets the same
    error, after the notice (nothing is trained)."""
    out = tmp_path / "st"
    assert main(["study", "--quick", "--training-budgets", "2,1", "--out", str(out)]) != 0
    err = capsys.readouterr().err
    assert "--training-budgets is deprecated" in err and "use --epoch-multiples" in err
    assert "epoch_multiples must start at 1" in err
    assert not out.exists()
