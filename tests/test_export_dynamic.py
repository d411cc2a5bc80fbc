"""One ONNX file for any input size: ``export_onnx(..., dynamic_size=True)`` / ``--dynamic``.

The oracle is eager PyTorch at sizes other than the traced one (both parities of every
stride-2 "same" pad), plus timm's own recorded output for the TF-padding fixture.
"""

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from test_export import TIMM_TF, fixture_model
from torch import nn

from effnet import EffnetError, Padding, create_model
from effnet.cli import main
from effnet.export import dynamic_check_shapes, export_onnx

pytestmark = [
    pytest.mark.slow,
    pytest.mark.usefixtures("one_thread"),
]  # ONNX exports checked in ONNX Runtime at several sizes

FIXTURES = Path(__file__).parent / "fixtures" / "weights"


def tiny(padding: Padding, seed: int = 0) -> nn.Module:
    """A tiny B0 with non-trivial BN statistics, so logits are not near zero."""
    torch.manual_seed(seed)
    model = create_model(
        "efficientnet_b0", num_classes=7, width=0.25, depth=0.25, padding=padding, resolution=32
    )
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    model.classifier.weight.data.normal_(0, 1.0, generator=g)
    return model.eval()


def ort_logits(path: Path, x: torch.Tensor) -> torch.Tensor:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"input": x.numpy()})[0])


def eager(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(x)


@pytest.mark.parametrize("padding", [Padding.SAME, Padding.SYMMETRIC])
def test_dynamic_export_matches_eager_at_three_sizes(tmp_path, padding):
    model = tiny(padding)
    out = export_onnx(model, tmp_path / "d.onnx", dynamic_size=True)
    assert out.dynamic_size and out.dynamic_batch
    checked = [shape[-2:] for shape, _ in out.checks]
    assert checked == dynamic_check_shapes(32) and len(set(checked)) == 3
    assert all(diff < 1e-4 for _, diff in out.checks)
    # independently of the export's own check: other batches and sizes, odd and even
    for shape in [(1, 3, 32, 32), (3, 3, 45, 45), (2, 3, 40, 27), (1, 3, 64, 96)]:
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))
        want = eager(model, x)
        assert want.abs().max() > 0.1  # non-trivial logits
        assert (ort_logits(out.path, x) - want).abs().max() < 1e-4, shape


def test_dynamic_export_reproduces_timm_tf_padding(tmp_path):
    model, x, want = fixture_model(TIMM_TF)
    out = export_onnx(model, tmp_path / "tf.onnx", image_size=32, dynamic_size=True)
    assert (ort_logits(out.path, x) - want).abs().max() < 1e-4  # at 45 px


def test_dynamic_graph_computes_same_padding(tmp_path):
    """Symbolic H and W in the file; the stride-2 pads are computed, not initialisers."""
    out = export_onnx(tiny(Padding.SAME), tmp_path / "d.onnx", dynamic_size=True, validate=False)
    proto = onnx.load(str(out.path))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "", "height", "width"]
    constants = {i.name for i in proto.graph.initializer} | {
        o for n in proto.graph.node if n.op_type == "Constant" for o in n.output
    }
    pads = [n.input[1] for n in proto.graph.node if n.op_type == "Pad"]
    assert pads and any(p not in constants for p in pads)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["effnet.dynamic_size"] == "true"


def test_fixed_size_export_stays_fixed(tmp_path):
    model = tiny(Padding.SAME)
    out = export_onnx(model, tmp_path / "f.onnx", image_size=45)
    assert not out.dynamic_size and out.max_abs_diff < 1e-4
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        ort_logits(out.path, torch.randn(1, 3, 32, 32))


def test_dynamic_export_needs_opset_11(tmp_path):
    with pytest.raises(EffnetError, match="opset"):
        export_onnx(tiny(Padding.SAME), tmp_path / "x.onnx", dynamic_size=True, opset=10)


def test_cli_export_dynamic(tmp_path, capsys):
    target = tmp_path / "tf.onnx"
    args = ["export", "tf_efficientnet_b0", "--width", "0.25", "--depth", "0.25",
            "--image-size", "32", "--num-classes", "3", "--dynamic",
            "--out", str(target)]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "any HxW" in out and "batch dynamic" in out
    diffs = [float(line.split()[-1]) for line in out.splitlines() if " at " in line]
    assert len(diffs) == 3 and max(diffs) < 1e-4
    for shape in [(1, 3, 32, 32), (2, 3, 57, 33)]:
        session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
        logits = session.run(None, {"input": np.zeros(shape, np.float32)})[0]
        assert logits.shape == (shape[0], 3)


@pytest.mark.parametrize(
    "name", ["tf_efficientnet_lite0", "mobilenet_v1", "mobilenet_v2", "resnet50"]
)
def test_dynamic_export_of_every_block_type_with_same_padding(tmp_path, name):
    torch.manual_seed(0)
    model = create_model(
        name, num_classes=4, width=0.25, depth=0.25, padding=Padding.SAME, resolution=32
    ).eval()
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    out = export_onnx(model, tmp_path / "d.onnx", dynamic_size=True)
    scale = max(1.0, eager(model, torch.randn(2, 3, 48, 48)).abs().max().item())
    assert len(out.checks) == 3 and all(diff < 1e-4 * scale for _, diff in out.checks)
