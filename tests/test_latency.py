"""effnet.latency, `effnet bench` and `effnet scale --budget-latency`; ResNet-101/152.

No timing thresholds: measurements run on tiny inputs and are checked for their shape;
the bisection is checked on a fake, monotone cost (multiply-adds read as milliseconds).
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from effnet import latency
from effnet.cli import main
from effnet.infer import onnxruntime_available
from effnet.latency import Latency, compare, fit_latency, latency_cost, measure, parse_ms
from effnet.profile import macs_of, params_of
from effnet.registry import get_arch
from effnet.scaling import scale_phi

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = get_arch("efficientnet_b0", phi=-8)
BACKENDS = ["torch"] + (["onnxruntime", "int8"] if onnxruntime_available() else [])


def fake_ms(arch) -> float:
    """A monotone stand-in for latency: 1 ms per 10M multiply-adds."""
    return macs_of(arch) / 1e7


@pytest.mark.parametrize(
    ("name", "torchvision_params"), [("resnet101", 44_549_160), ("resnet152", 60_192_808)]
)
def test_resnet_101_152_have_torchvisions_parameter_counts(name, torchvision_params):
    assert params_of(get_arch(name)) == torchvision_params


@pytest.mark.parametrize("backend", BACKENDS)
def test_measure_gives_ordered_quartiles(backend):
    lat = measure(TINY, backend=backend, threads=1, rounds=3, warmup=1, image_size=32)
    assert isinstance(lat, Latency)
    assert (lat.backend, lat.batch, lat.threads, lat.rounds, lat.image_size) == (
        backend, 1, 1, 3, 32,
    )  # fmt: skip
    assert 0 < lat.p25_ms <= lat.median_ms <= lat.p75_ms
    assert lat.images_per_s == pytest.approx(1000 / lat.median_ms)
    assert set(lat.to_dict()) >= {"median_ms", "p25_ms", "p75_ms", "images_per_s", "threads"}


@pytest.mark.skipif(not onnxruntime_available(), reason="needs onnxruntime")
def test_int8_backend_times_a_quantized_graph(tmp_path):
    import onnx

    from effnet.model import build

    model = build(TINY, num_classes=10).eval()
    runner = latency.int8_runner(model, 32, 1, tmp_path / "m.int8.onnx")
    ops = {n.op_type for n in onnx.load(str(tmp_path / "m.int8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ: the convolutions run in INT8
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
    out = torch.as_tensor(runner.logits(x))
    assert out.shape == (2, 10)
    assert float((out - ref).abs().max()) < 0.5 * float(ref.abs().max()) + 1  # close, not equal


def test_compare_keeps_the_order_and_counts_every_round():
    small, larger = TINY, scale_phi(TINY, 1.0)
    rows = compare([small, larger], threads=1, rounds=4, warmup=0, batch=2, image_size=32)
    assert [r.model for r in rows] == [small.name, larger.name]
    assert all(r.rounds == 4 and r.batch == 2 for r in rows)


@pytest.mark.parametrize(
    "options",
    [dict(backend="tflite"), dict(rounds=0), dict(batch=0), dict(threads=-1), dict(warmup=-1)],
)
def test_bad_options_are_refused(options):
    with pytest.raises(Exception, match="must be|unknown backend"):
        compare([TINY], **options)


@pytest.mark.parametrize(("text", "ms"), [("20ms", 20.0), ("20", 20.0), ("0.02s", 20.0)])
def test_parse_ms(text, ms):
    assert parse_ms(text) == pytest.approx(ms)


def test_latency_cost_measures_each_architecture_once(monkeypatch):
    calls = []

    def fake_compare(models, **options):
        calls.append(models[0])
        return [Latency(models[0].name, "torch", 1, 32, 1, 1, 5.0, 4.0, 6.0)]

    monkeypatch.setattr(latency, "compare", fake_compare)
    cost = latency_cost(rounds=1)
    assert cost(TINY) == cost(TINY) == 5.0
    assert calls == [TINY]


@pytest.mark.parametrize("budget_ms", [5.0, 40.0, 300.0])
def test_bisection_converges_on_a_monotone_cost(budget_ms):
    base = get_arch("efficientnet_b0")
    f = fit_latency(base, budget_ms, fake_ms)
    assert f.cost <= budget_ms
    assert fake_ms(scale_phi(base, f.value + 0.01)) > budget_ms * 0.97  # no room left
    assert f.relative_error > -0.1


def test_scale_budget_latency_reports_both_fits(monkeypatch, capsys):
    def fake_compare(models, **options):
        return [Latency(m.name, "torch", 1, m.resolution, 1, 1, fake_ms(m), 0, 0) for m in models]

    monkeypatch.setattr(latency, "compare", fake_compare)
    assert main(["scale", "efficientnet_b0", "--budget-latency", "20ms", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)["latency"]
    assert out["budget_ms"] == 20.0
    assert out["latency_fit"]["median_ms"] <= 20.0
    assert out["flops_fit"]["macs"] <= out["nominal_macs"]
    assert main(["scale", "efficientnet_b0", "--budget-latency", "20ms"]) == 0
    assert "FLOPs fit at the same nominal cost" in capsys.readouterr().out


def test_bench_prints_ratios_to_the_first_model(capsys):
    argv = ["bench", "efficientnet_b0", "resnet50", "--image-size", "32", "--threads", "1"]
    assert main([*argv, "--rounds", "2", "--warmup", "0", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rows = doc["rows"]
    assert [r["model"] for r in rows] == ["efficientnet_b0", "resnet50"]
    assert rows[0]["ratio"] == 1.0 and math.isfinite(rows[1]["ratio"])
    machine = doc["machine"]  # the CPU and its flags, read from /proc/cpuinfo
    assert machine["threads"] == 1 and machine["cpu"] and machine["torch"]
    cpuinfo = open("/proc/cpuinfo").read()
    assert ("avx2" in machine["flags"]) == (" avx2 " in cpuinfo.replace("\n", " "))
    assert main([*argv, "--rounds", "1", "--warmup", "0"]) == 0
    out = capsys.readouterr().out
    assert "| efficientnet_b0 | 32 |" in out and out.startswith("machine: ")


@pytest.mark.parametrize(
    "argv",
    [
        ["scale", "--budget-latency", "abc"],
        ["scale", "--budget-latency", "-5ms"],
        ["scale", "--budget-latency", "0"],
        ["scale", "--budget-latency", "nan"],
        ["scale", "--budget-latency", "20ms", "--budget-flops", "1e9"],
        ["bench", "no_such_model", "--rounds", "1"],
        ["bench", "efficientnet_b0", "--rounds", "0"],
        ["bench", "efficientnet_b0", "--backend", "tflite"],
        ["bench", "efficientnet_b0", "--warmup", "-1", "--image-size", "32"],
    ],
)
def test_bad_input_is_one_line(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("effnet")
