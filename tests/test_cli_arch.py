"""effnet models / describe / scale, and one-line errors for bad input."""

import json
import subprocess
import sys

import pytest

from effnet import Architecture
from effnet.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_models_table_json(capsys):
    code, out, _ = run(capsys, "models", "--json")
    rows = {r["model"]: r for r in json.loads(out)}
    assert code == 0 and len(rows) >= 10
    assert rows["efficientnet_b0"]["params"] == 5_288_548
    assert rows["efficientnet_b7"]["resolution"] == 600
    assert rows["efficientnet_l2"]["width"] == 4.3


def test_describe_prints_table_1_and_totals(capsys):
    code, out, _ = run(capsys, "describe", "efficientnet_b0")
    assert code == 0
    assert "| 6     | MBConv6, k5x5          | 14x14            | 112" in out
    assert "params 5,288,548" in out


def test_describe_with_phi_and_save(capsys, tmp_path):
    target = tmp_path / "b0-phi1.json"
    code, out, _ = run(capsys, "describe", "efficientnet_b0", "--phi", "1", "--save", str(target))
    assert code == 0 and "258x258" in out
    arch = Architecture.load(target)
    assert arch.resolution == 258 and arch.depth == pytest.approx(1.2)
    # a saved file is never overwritten without --force
    target.write_text("keep me")
    code, _, err = run(capsys, "describe", "efficientnet_b0", "--save", str(target))
    assert code == 2 and "already exists" in err and target.read_text() == "keep me"


def test_scale_to_budget(capsys):
    code, out, _ = run(capsys, "scale", "--budget-flops", "1.8e9", "--json")
    result = json.loads(out)
    assert code == 0 and result["macs"] <= 1.8e9 and result["macs"] > 0.95 * 1.8e9
    assert result["constraint"] == pytest.approx(1.92, abs=0.01)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["describe", "efficientnet_b9"], "unknown model 'efficientnet_b9'"),
        (["describe", "efficientnet_b0", "--width", "-1"], "--width must be a positive"),
        (["describe", "missing.json"], "cannot read architecture file missing.json"),
        (["scale", "--phi", "1", "--alpha", "0.5"], "alpha must be a finite number >= 1"),
        (["scale", "--phi", "1", "--alpha", "1.5", "--tolerance", "0.1"], "not within 0.1 of 2"),
        (["scale", "--budget-flops", "1000"], "no model fits a budget"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_malformed_json_from_the_shell(tmp_path):
    bad = tmp_path / "arch.json"
    bad.write_text('{"name": "x", "stages": [')
    proc = subprocess.run(
        [sys.executable, "-m", "effnet", "describe", str(bad)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("effnet: error:") and "malformed" in proc.stderr
    assert "Traceback" not in proc.stderr
