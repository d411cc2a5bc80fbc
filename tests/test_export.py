"""ONNX export and fast inference: BN folding keeps outputs, the exported file reproduces
PyTorch (and timm's recorded outputs) in ONNX Runtime, batch is dynamic, both paddings work.

The timm fixtures (tests/fixtures/weights, made with the real timm 1.0.31) hold trained-
like weights with randomised batch-norm statistics and timm's own outputs, so folding and
export are checked against an independent implementation, not only against ourselves.
"""

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from effnet import EffnetError, Padding, create_model, get_arch, list_models
from effnet.cli import main
from effnet.export import count_batch_norms, deploy_form, export_onnx, fold_bn, fold_conv_bn
from effnet.images import Preprocess
from effnet.infer import Runner
from effnet.scaling import scale_phi
from effnet.weights import load_pretrained
from effnet.weights.safe import read_safetensors

pytestmark = [
    pytest.mark.slow,
    pytest.mark.usefixtures("one_thread"),
]  # ONNX exports checked in ONNX Runtime


FIXTURES = Path(__file__).parent / "fixtures" / "weights"
INDEX = json.loads((FIXTURES / "fixtures.json").read_text())
TIMM, TIMM_TF = "timm_efficientnet_w0125_d11", "timm_tf_efficientnet_w0125_d11"


def fixture_model(name: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    meta = INDEX[name]
    model = create_model(
        "efficientnet_b0",
        num_classes=meta["num_classes"],
        width=meta["width"],
        depth=meta["depth"],
        padding=Padding(meta["padding"]),
        resolution=meta["input"][-1],
    ).eval()
    load_pretrained(model, FIXTURES / f"{name}.safetensors")
    io, _ = read_safetensors(FIXTURES / f"{name}.io.safetensors")
    return model, io["input"], io["output"]


def randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics, so that folding them is not the identity."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    return model.eval()


def eager(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model.eval()(x)


# -- BN folding ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", [TIMM, TIMM_TF])
def test_folding_keeps_timm_outputs(name):
    model, x, y = fixture_model(name)
    folded = fold_bn(model)
    assert count_batch_norms(model) > 40 and count_batch_norms(folded) == 0
    want = eager(model, x)
    assert (eager(folded, x) - want).abs().max() < 1e-5
    assert (eager(deploy_form(model), x) - want).abs().max() < 1e-5
    assert (eager(folded, x) - y).abs().max() < 1e-4  # timm's own output
    assert count_batch_norms(model) > 40  # the original is left alone


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2", "resnet50"])
def test_folding_covers_every_block_type(name):
    model = randomise_bn(create_model(name, num_classes=7, width=0.25, depth=0.34))
    folded = fold_bn(model)
    assert count_batch_norms(folded) == 0
    x = torch.randn(2, 3, 48, 48)
    want = eager(model, x)
    scale = float(want.abs().max())
    assert scale > 1e-2
    assert (eager(folded, x) - want).abs().max() < 1e-5 * max(1.0, scale)  # float32 rounding


@settings(max_examples=25, deadline=None)
@given(
    cin=st.integers(1, 6),
    cout=st.integers(1, 6),
    groups_dw=st.booleans(),
    bias=st.booleans(),
    eps=st.sampled_from([1e-5, 1e-3]),
    seed=st.integers(0, 2**16),
)
def test_fold_conv_bn_equals_conv_then_bn(cin, cout, groups_dw, bias, eps, seed):
    torch.manual_seed(seed)
    groups = cin if groups_dw else 1
    cout = cin if groups_dw else cout
    conv = nn.Conv2d(cin, cout, 3, padding=1, groups=groups, bias=bias)
    bn = randomise_bn(nn.Sequential(nn.BatchNorm2d(cout, eps=eps)), seed)[0]
    x = torch.randn(2, cin, 7, 7)
    want = eager(nn.Sequential(conv, bn), x)
    fold_conv_bn(conv, bn)
    assert (eager(conv, x) - want).abs().max() < 1e-5


# -- ONNX export ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", [TIMM, TIMM_TF])
def test_onnx_reproduces_timm_with_dynamic_batch(tmp_path, name):
    model, x, y = fixture_model(name)
    out = export_onnx(model, tmp_path / "m.onnx", dynamic_batch=True, validation_input=x)
    assert out.max_abs_diff is not None and out.max_abs_diff < 1e-4
    proto = onnx.load(str(out.path))
    ops = {n.op_type for n in proto.graph.node}
    assert "BatchNormalization" not in ops and "GlobalAveragePool" in ops
    session = ort.InferenceSession(str(out.path), providers=["CPUExecutionProvider"])
    for batch in (x[:1], torch.cat([x, x.flip(0), x])):  # traced with 1; runs with 1 and 6
        got = torch.from_numpy(session.run(None, {"input": batch.numpy()})[0])
        assert (got - eager(model, batch)).abs().max() < 1e-4
    got = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
    assert (got - y).abs().max() < 1e-4  # timm's own output


def test_onnx_of_a_compound_scaled_model(tmp_path):
    torch.manual_seed(0)
    arch = scale_phi(get_arch("efficientnet_b0", width=0.25, depth=0.34), 1.0)
    arch = arch.replace(resolution=56, padding=Padding.SAME)
    model = randomise_bn(create_model(arch, num_classes=5))
    out = export_onnx(model, tmp_path / "s.onnx", dynamic_batch=True, opset=13)
    size = eager(model, torch.randn(2, 3, 56, 56)).abs().max().item()
    assert size > 1e-2  # non-trivial outputs
    # float32 rounding grows with the logits' size (randomised BN makes them large)
    assert out.image_size == 56 and out.max_abs_diff < 1e-4 * max(1.0, size)


def test_fixed_batch_export_refuses_other_batches(tmp_path):
    model, x, _ = fixture_model(TIMM)
    out = export_onnx(model, tmp_path / "f.onnx")
    session = ort.InferenceSession(str(out.path), providers=["CPUExecutionProvider"])
    session.run(None, {"input": x[:1].numpy()})
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        session.run(None, {"input": x.numpy()})


def test_bad_opset_is_a_user_error(tmp_path):
    with pytest.raises(EffnetError, match="opset"):
        export_onnx(
            create_model("efficientnet_b0", width=0.25, depth=0.34), tmp_path / "x", opset=3
        )


# -- Runner -----------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["onnxruntime", "torch", "eager"])
@pytest.mark.parametrize("name", [TIMM, TIMM_TF])
def test_runner_backends_match_timm(name, backend):
    model, x, y = fixture_model(name)
    runner = Runner(model, backend=backend, threads=1)
    assert (runner.logits(x) - y).abs().max() < 1e-4
    assert (runner.logits(x[:1]) - y[:1]).abs().max() < 1e-4  # another batch size
    top = runner.top_k(x, k=3)
    assert [g.index for g in top[0]] == y[0].topk(3).indices.tolist()
    assert abs(sum(g.probability for g in runner.top_k(x, k=10)[1]) - 1.0) < 1e-4


def test_runner_over_exported_file_knows_the_preprocessing(tmp_path):
    model, x, y = fixture_model(TIMM_TF)
    model.class_names = [f"c{i}" for i in range(10)]
    export_onnx(model, tmp_path / "m.onnx", dynamic_batch=True, validate=False)
    runner = Runner.from_onnx(tmp_path / "m.onnx", threads=1)
    assert Preprocess.of(runner) == Preprocess.of(model)
    assert runner.arch.padding is Padding.SAME and runner.arch.resolution == 45
    assert runner.class_names[3] == "c3"
    assert (runner.logits(x) - y).abs().max() < 1e-4


def test_runner_errors():
    with pytest.raises(EffnetError, match="backend"):
        Runner(create_model("efficientnet_b0", width=0.25, depth=0.34), backend="tpu")
    with pytest.raises(EffnetError, match="no such ONNX"):
        Runner.from_onnx("/nonexistent/m.onnx")


# -- CLI ----------------------------------------------------------------------------------------
def test_cli_export_reports_difference_and_refuses_overwrite(tmp_path, capsys):
    target = tmp_path / "b0.onnx"
    args = ["export", "efficientnet_b0", "--width", "0.25", "--depth", "0.34", "--image-size",
            "48", "--num-classes", "4", "--dynamic-batch", "--out", str(target)]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    diff = float(out.split("max abs difference ")[1].split()[0])
    assert diff < 1e-4 and "48px" in out and "batch dynamic" in out
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input": np.zeros((3, 3, 48, 48), np.float32)})[0]
    assert logits.shape == (3, 4)
    before = target.read_bytes()
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err and target.read_bytes() == before
    assert main([*args, "--force"]) == 0


def test_a_batch_norm_no_block_declares_is_an_error_not_skipped():
    from torch import nn

    from effnet import EffnetError, create_model
    from effnet.export import fold_bn

    model = create_model("efficientnet_b0", num_classes=3, width=0.25, depth=0.25)
    model.extra = nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3))  # declares no pairs
    with pytest.raises(EffnetError, match=r"cannot fold batch norm extra\.1"):
        fold_bn(model)
    del model.extra
    folded = fold_bn(model)
    assert not [m for m in folded.modules() if isinstance(m, nn.BatchNorm2d)]


# efficientnetv2_m/l have efficientnetv2_s's blocks, 57 and 79 of them: random statistics
# through that depth grow the activations to 1e4, where float32 rounding alone breaks 1e-4
DEEP = ("efficientnetv2_m", "efficientnetv2_l")


@pytest.mark.parametrize(
    "name", [n for n in list_models() if not n.startswith("tf_") and n not in DEEP]
)
def test_fold_covers_every_registered_model(name):
    """Every BN of every model (so of every block type in use) folds; outputs stay equal."""
    from torch import nn

    from effnet.export import fold_bn

    torch.manual_seed(0)
    model = create_model(name, num_classes=5, width=0.25).eval()
    for m in model.modules():  # statistics away from the identity, so folding does something
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    x = torch.randn(2, 3, 32, 32)
    folded = fold_bn(model)
    assert not [m for m in folded.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        ref, out = model(x), folded(x)
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
