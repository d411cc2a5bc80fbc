"""The SE gate kept in ORT's NCHWc layout: same outputs as ORT's own graph, the check that
guards it has teeth (a wrong block size is caught and the plain session kept), and the
span arithmetic is right for every map size.

ORT uses its blocked layout only on x86 CPUs with AVX or better; elsewhere the tests that
need it skip (the rewrite then finds nothing to rewrite and the plain session is used).
"""

import json
import os
import tempfile

import numpy as np
import onnx
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from effnet import create_model
from effnet.infer import Runner, onnx_bytes
from effnet.ortgraph import (
    block_sizes,
    optimised_session,
    ort_session,
    rewrite_gates,
    span_repeats,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@given(st.integers(1, 20000), st.sampled_from([4, 8, 16]), st.sampled_from([16, 64, 512]))
def test_span_repeats_is_the_largest_divisor_within_the_span(pixels, block, span):
    k = span_repeats(pixels, block, span)
    assert pixels % k == 0
    assert k == 1 or k * block <= span
    assert not any(pixels % j == 0 and j * block <= span for j in range(k + 1, pixels + 1))


@pytest.fixture(scope="module")
def b0_bytes() -> bytes:
    """B0 at 64 px with batch-norm statistics from two train-mode passes (realistic scale).

    Every expanded width of B0 (32 ... 1152) is a multiple of 16, so both candidate block
    sizes match every gate, and only the numerical check tells the right one."""
    torch.manual_seed(0)
    model = create_model("efficientnet_b0")
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(4, 3, 64, 64))
    return onnx_bytes(model.eval(), 64)


def ort_graph(source: bytes) -> onnx.ModelProto:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "o.onnx")
        ort_session(source, 1, "ORT_ENABLE_ALL", save_to=path)
        return onnx.load(path)


def needs_nchwc(graph: onnx.ModelProto) -> None:
    if not any(n.op_type == "ReorderOutput" for n in graph.graph.node):
        pytest.skip("ONNX Runtime does not use its NCHWc layout on this CPU")


def run(session, x: np.ndarray) -> np.ndarray:
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_rewritten_session_matches_ort_graph_at_two_batch_sizes(b0_bytes):
    optimised = ort_graph(b0_bytes)
    needs_nchwc(optimised)
    result = optimised_session(b0_bytes, threads=1)
    assert result.gates == 16  # one per MBConv block of B0
    assert result.block in (8, 16)
    ops = [n.op_type for n in onnx.load_from_string(b0_bytes).graph.node]
    assert ops.count("Mul") > 16  # SiLU and gates: the rewrite must not touch the SiLU muls
    plain = ort_session(b0_bytes, 1, "ORT_ENABLE_ALL")
    rng = np.random.default_rng(1)
    for batch in (1, 3):
        x = rng.standard_normal((batch, 3, 64, 64)).astype(np.float32)
        want = run(plain, x)
        np.testing.assert_allclose(run(result.session, x), want, rtol=0, atol=1e-6)
        assert float(np.abs(want).max()) > 1e-3  # logits big enough for the check to mean much


def test_wrong_block_size_is_caught_and_plain_session_kept(b0_bytes, monkeypatch):
    original = onnx.load_from_string(b0_bytes)
    optimised = ort_graph(b0_bytes)
    needs_nchwc(optimised)
    right = optimised_session(b0_bytes, threads=1).block
    wrong = 8 if right == 16 else 16
    edited, count = rewrite_gates(original, optimised, wrong)
    assert count == 16
    bad = ort_session(edited.SerializeToString(), 1, "ORT_ENABLE_BASIC")
    plain = ort_session(b0_bytes, 1, "ORT_ENABLE_ALL")
    x = np.random.default_rng(2).standard_normal((2, 3, 64, 64)).astype(np.float32)
    want = run(plain, x)
    relative = float(np.abs(run(bad, x) - want).max()) / float(np.abs(want).max())
    assert relative > 1e-4  # a wrong layout shows, 10x above the check's 1e-5

    monkeypatch.setattr("effnet.ortgraph.block_sizes", lambda: (wrong,))
    fallback = optimised_session(b0_bytes, threads=1)
    assert (fallback.gates, fallback.block) == (0, None)
    np.testing.assert_allclose(run(fallback.session, x), want, rtol=0, atol=0)

    monkeypatch.setattr("effnet.ortgraph.block_sizes", lambda: (wrong, right))
    assert optimised_session(b0_bytes, threads=1).block == right


def test_rewritten_session_keeps_the_files_metadata(tmp_path):
    from effnet.export import export_onnx

    torch.manual_seed(0)
    model = create_model("efficientnet_b0").eval()
    model.class_names = [f"c{i}" for i in range(1000)]
    path = tmp_path / "b0.onnx"
    export_onnx(model, path, image_size=64, dynamic_batch=True, validate=False)
    result = optimised_session(str(path), threads=1)
    needs_nchwc(ort_graph(path.read_bytes()))
    assert result.gates == 16
    meta = result.session.get_modelmeta().custom_metadata_map
    assert "effnet.arch" in meta and "c999" in meta["effnet.class_names"]
    cfg = json.loads(meta["effnet.pretrained_cfg"])  # the preprocessing the weights carry
    assert cfg["input_size"] == [3, 224, 224] and cfg["interpolation"] == "bicubic"
    runner = Runner.from_onnx(path, threads=1)
    assert runner.class_names[7] == "c7" and runner.arch.resolution == 64  # the export size


def test_dynamic_size_export_is_left_to_ort(tmp_path):
    from effnet.export import export_onnx

    torch.manual_seed(0)
    model = create_model("efficientnet_b0").eval()
    path = tmp_path / "dyn.onnx"
    export_onnx(model, path, image_size=64, dynamic_batch=True, dynamic_size=True)
    result = optimised_session(str(path), threads=1)
    assert result.gates == 0  # map sizes unknown until run time
    x = np.random.default_rng(3).standard_normal((1, 3, 72, 56)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run(result.session, x), want, rtol=0, atol=1e-4)


def test_runner_on_ort_agrees_with_eager():
    torch.manual_seed(0)
    model = create_model("efficientnet_b0")
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 64, 64))
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want = model(x)
    got = Runner(model, backend="onnxruntime", threads=1).logits(x)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-4)


def test_block_sizes_tries_both():
    assert sorted(block_sizes()) == [8, 16]


def test_spinning_switch_reaches_the_session(b0_bytes):
    for spinning, want in ((True, "1"), (False, "0")):
        session = optimised_session(b0_bytes, threads=2, spinning=spinning).session
        options = session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == want
