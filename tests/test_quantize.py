"""INT8 through ONNX Runtime: a tiny model trained here on the Fashion-MNIST slice keeps its
top-1 after quantization; the file is QDQ with per-channel int8 weights; bad input is one line.
"""

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from effnet import EffnetError, create_model, qdq
from effnet.cli import main
from effnet.data import BatchTransform, DataSpec, load_splits
from effnet.infer import Runner
from effnet.qdq import needs_reduce_range, onnx_logits
from effnet.quantize import quantize, read_images
from effnet.weights import save_pretrained

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny B0 trained in seconds on the slice's 1,000 training images (~68% test top-1)."""
    torch.manual_seed(0)
    model = create_model(
        "efficientnet_b0", num_classes=10, in_chans=1, width=0.25, depth=0.25, resolution=32
    )
    splits = load_splits(DataSpec(minival=0, workers=0))
    arch = model.arch
    transform = BatchTransform(
        32, arch.mean, arch.std, train=False, crop_pct=arch.crop_pct, interpolation="bilinear"
    )
    x, y = transform(splits.train.dataset.images), splits.train.dataset.labels.long()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 0.1  # TF's 0.01 would leave eval statistics unsettled after 100 steps
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _epoch in range(3):
        for idx in torch.randperm(len(x)).split(50):
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    folder = tmp_path_factory.mktemp("tiny") / "model"
    save_pretrained(model, folder)
    return model, folder


def top1(logits: np.ndarray, labels: torch.Tensor) -> float:
    return float((logits.argmax(1) == labels.numpy()).mean() * 100)


def test_int8_keeps_top1_of_a_trained_model(trained, tmp_path):
    model, _ = trained
    calib = read_images(model, "fashion-mnist", 200)
    check = read_images(model, "fashion-mnist", 300, skip=200)
    report = quantize(model, calib, check, tmp_path / "q.onnx")
    test = read_images(model, "fashion-mnist", 300, split="test")
    with torch.inference_mode():
        fp32 = top1(model(test.tensor).numpy(), test.labels)
    int8_logits = onnx_logits(report.path, test.tensor)
    assert fp32 > 50  # the model learned something, so agreement means something
    assert abs(top1(int8_logits, test.labels) - fp32) <= 3.0  # 300 images: 1 image = 0.33
    # every choice was measured; the chosen ones are the reported ones
    assert set(report.methods) <= {"minmax", "entropy", "percentile"} and report.methods
    assert report.method in report.methods and report.ops in report.op_choices
    errors = [e for _, e in report.sensitivity]
    assert errors == sorted(errors, reverse=True) and len(errors) > 20
    assert report.kept_fp32 == [n for n, _ in report.sensitivity[: len(report.kept_fp32)]]
    assert report.int8 == report.keep_sweep[len(report.kept_fp32)]


def test_qdq_file_structure_and_metadata(trained, tmp_path):
    model, _ = trained
    calib = read_images(model, "fashion-mnist", 64)
    check = read_images(model, "fashion-mnist", 128, skip=64)
    report = quantize(model, calib, check, tmp_path / "q.onnx", method="minmax", ops="conv",
                      keep_fp32=2, reduce_range=False)  # fmt: skip
    proto = onnx.load(report.path)
    graph, init = proto.graph, {t.name: t for t in proto.graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    quantized = [c for c in convs if producers.get(c.input[1]) is not None]
    kept = [c.name for c in convs if c not in quantized]
    assert sorted(kept) == sorted(n for n in report.kept_fp32 if "Conv" in n)
    assert len(quantized) >= len(convs) - 2 > 20
    for conv in quantized:  # weight: int8, per output channel (axis 0)
        dq = producers[conv.input[1]]
        assert dq.op_type == "DequantizeLinear"
        weight = numpy_helper.to_array(init[dq.input[0]])
        scale = numpy_helper.to_array(init[dq.input[1]])
        assert weight.dtype == np.int8 and scale.shape == (weight.shape[0],)
        assert np.abs(weight.astype(int)).max() > 64  # the full 8-bit range
        assert producers[conv.input[0]].op_type == "DequantizeLinear"  # activation
    runner = Runner.from_onnx(report.path, threads=1)  # preprocessing from metadata
    assert runner.arch == model.arch and runner.in_chans == 1
    meta = json.loads(runner._session.get_modelmeta().custom_metadata_map["effnet.quantization"])
    assert meta["kept_fp32"] == report.kept_fp32 and meta["reduce_range"] is False
    with torch.inference_mode():
        want = model(check.tensor).argmax(1)
    agree = (runner.logits(check.tensor).argmax(1) == want).float().mean()
    assert agree >= 0.9 and agree == pytest.approx(report.int8.agreement)


def test_cli_quantize(trained, tmp_path, capsys):
    _, folder = trained
    out, rep = tmp_path / "m.int8.onnx", tmp_path / "r.json"
    args = ["quantize", str(folder), "--calib", "fashion-mnist", "--images", "50",
            "--check-images", "100", "--method", "minmax", "--keep-fp32", "1",
            "--out", str(out), "--report", str(rep)]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "wrote" in text and "1 layers fp32" in text and out.is_file()
    assert json.loads(rep.read_text())["calib_images"] == 50
    assert main(args) == 2 and "already exists" in capsys.readouterr().err


def one_error_line(args, capsys) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    return err[0]


def test_bad_input_is_one_line(trained, tmp_path, capsys):
    _, folder = trained
    out = str(tmp_path / "x.onnx")
    empty = tmp_path / "empty"
    empty.mkdir()
    line = one_error_line(["quantize", str(folder), "--calib", str(empty), "--out", out], capsys)
    assert "no calibration images" in line
    line = one_error_line(
        ["quantize", str(folder), "--calib", "fashion-mnist", "--images", "0", "--out", out],
        capsys,
    )
    assert "at least 1 calibration image" in line
    rgb = tmp_path / "rgb"
    save_pretrained(create_model("efficientnet_b0", num_classes=10, width=0.25, depth=0.25), rgb)
    line = one_error_line(["quantize", str(rgb), "--calib", "fashion-mnist", "--out", out], capsys)
    assert "1-channel images; the model takes 3" in line
    (rgb / "model.safetensors").unlink()
    line = one_error_line(["quantize", str(rgb), "--calib", "fashion-mnist", "--out", out], capsys)
    assert "no weights" in line


def test_bad_choices_raise():
    model = create_model("efficientnet_b0", num_classes=10, in_chans=1, width=0.25, depth=0.25)
    x = read_images(model, "fashion-mnist", 8)
    with pytest.raises(EffnetError, match="calibration method"):
        quantize(model, x, x, "/nonexistent/x.onnx", method="kl")
    with pytest.raises(EffnetError, match="ops"):
        quantize(model, x, x, "/nonexistent/x.onnx", ops="depthwise")


def test_calibration_from_folders(trained, tmp_path, fashion_folder):
    model, _ = trained
    root = fashion_folder(tmp_path / "tree", (6, 1, 1))
    loose = read_images(model, root / "train" / "class3", 4, skip=2)  # a plain image folder
    assert loose.tensor.shape == (4, 1, 32, 32) and loose.labels is None
    first = read_images(model, root / "train" / "class3", 6)
    assert torch.equal(first.tensor[2:], loose.tensor)  # skip holds images out, in order
    with pytest.raises(EffnetError, match="3-channel images; the model takes 1"):
        read_images(model, root, 4)  # an ImageFolder tree decodes RGB


def test_reduce_range_only_on_x86_without_vnni(monkeypatch):
    monkeypatch.setattr(qdq.platform, "machine", lambda: "x86_64")
    assert needs_reduce_range({"sse4_2", "avx", "avx2", "fma"})  # AVX2 only: VPMADDUBSW
    assert not needs_reduce_range({"avx2", "avx512f", "avx512_vnni"})
    assert not needs_reduce_range({"avx2", "avx_vnni"})
    monkeypatch.setattr(qdq, "cpu_flags", lambda: None)  # flags unknown: ORT's default
    assert not needs_reduce_range()
    monkeypatch.setattr(qdq.platform, "machine", lambda: "aarch64")
    assert not needs_reduce_range({"asimd"})


def test_reduce_range_gives_7_bit_weights(trained, tmp_path):
    model, _ = trained
    calib = read_images(model, "fashion-mnist", 64)
    check = read_images(model, "fashion-mnist", 64, skip=64)
    report = quantize(model, calib, check, tmp_path / "q.onnx", method="minmax", ops="conv",
                      keep_fp32=0, reduce_range=True)  # fmt: skip
    proto = onnx.load(report.path)
    weights = [
        numpy_helper.to_array(t)
        for t in proto.graph.initializer
        if t.data_type == onnx.TensorProto.INT8
    ]
    assert len(weights) > 20 and max(np.abs(w.astype(int)).max() for w in weights) <= 64
    meta = {p.key: p.value for p in proto.metadata_props}
    assert report.reduce_range and json.loads(meta["effnet.quantization"])["reduce_range"]
    assert report.int8.agreement >= 0.85
