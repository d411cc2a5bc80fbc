"""Checkpoints of the ``efficientnet_pytorch`` package (PyPI efficientnet-pytorch 0.7.1).

Fixtures made with the real package (tools/make_efficientnet_pytorch_fixtures.py): two
tiny models in its naming and its default static "same" padding for a 45x45 image
(B0-shaped with SE and Swish; Lite-shaped with ReLU6 and no SE), random weights with
randomised batch-norm statistics, and the names and shapes of every full-size model.
The slow reference test compares full-size B0, B3 and Lite0 with the package itself.
"""

import gzip
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from effnet import EffnetError, Padding, create_model, get_arch
from effnet.cli import main
from effnet.images import Preprocess
from effnet.model import build
from effnet.weights import (
    detect_source,
    from_pretrained,
    load_efficientnet_pytorch,
    load_foreign,
    load_pretrained,
    map_efficientnet_pytorch,
    read_config,
)
from effnet.weights.foreign import set_eps
from effnet.weights.safe import read_safetensors

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "weights"
INDEX = json.loads((FIXTURES / "efficientnet_pytorch.json").read_text())
MANIFESTS = json.loads(gzip.decompress((FIXTURES / "efficientnet_pytorch_manifests.json.gz")
                                       .read_bytes()))  # fmt: skip
VERSION = MANIFESTS.pop("version")
B0, LITE0 = "efficientnet_pytorch_b0_w00625_d03", "efficientnet_pytorch_lite0_w00625_d03"
# its names -> ours: efficientnet-b3 is a TensorFlow port, so tf_efficientnet_b3
OURS = {name: "tf_" + name.replace("-", "_") for name in MANIFESTS}

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(name: str, **overrides) -> torch.nn.Module:
    """Our model for a tiny fixture, with what the package does differently at this size.

    It scales Lite's stem and head too, and adds no residual to a stage's first block
    even where that block has stride 1 and in == out (``no_skip_stages``; released sizes
    never have such a block).
    """
    meta = INDEX[name]
    arch = get_arch(meta["model"], width=meta["width"], depth=meta["depth"], **overrides)
    no_skip = meta["no_skip_stages"]
    assert all(arch.stages[i - 1].layers == 1 for i in no_skip)
    arch = arch.replace(
        stem=replace(arch.stem, out_channels=meta["stem"]),
        head=replace(arch.head, out_channels=meta["head"]),
        stages=tuple(replace(s, skip=i not in no_skip) for i, s in enumerate(arch.stages, 1)),
    )
    return build(arch, num_classes=meta["num_classes"]).eval()


def fixture(name: str) -> tuple[dict, torch.Tensor, torch.Tensor]:
    sd, meta = read_safetensors(FIXTURES / f"{name}.safetensors")
    assert meta["source"] == "efficientnet_pytorch"
    io, _ = read_safetensors(FIXTURES / f"{name}.io.safetensors")
    return sd, io["input"], io["output"]


def run(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


def meta_state_dict(name: str) -> dict[str, torch.Tensor]:
    return {k: torch.empty(s, device="meta") for k, s in MANIFESTS[name]["keys"]}


def random_state_dict(name: str) -> dict[str, torch.Tensor]:
    """A full-size checkpoint in the package's naming, with random values."""
    g = torch.Generator().manual_seed(0)
    out = {}
    for key, shape in MANIFESTS[name]["keys"]:
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(1)
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=g) + 0.5
        else:
            out[key] = torch.randn(shape, generator=g) * 0.05
    return out


# -- the package's outputs, reproduced ---------------------------------------------------------
@pytest.mark.parametrize("name", [B0, LITE0])
def test_fixture_outputs_reproduced(name):
    sd, x, y = fixture(name)
    model = tiny(name)
    assert detect_source(sd, model) == "efficientnet_pytorch"
    assert x.shape[-1] == INDEX[name]["built_for"]  # its static padding's image size
    loaded = load_pretrained(model, FIXTURES / f"{name}.safetensors")
    assert (loaded.source, loaded.tensors, loaded.eps) == ("efficientnet_pytorch", len(sd), 1e-3)
    assert (run(model, x) - y).abs().max() < 1e-4
    assert (y[0] - y[1]).abs().max() > 1e-2  # the output depends on the input
    # the test can fail: the other epsilon changes the output
    set_eps(model, 1e-5)
    assert (run(model, x) - y).abs().max() > 1e-2


def test_lite_fixture_has_relu6_and_no_se():
    model = tiny(LITE0)
    assert model.arch.activation == "relu6" and all(s.se == 0 for s in model.arch.stages)
    assert not any("se." in k for k in model.state_dict())


def test_symmetric_padding_is_refused_naming_the_tf_model():
    sd, _, _ = fixture(B0)
    with pytest.raises(EffnetError, match="need TensorFlow 'same' padding .* padding='same'"):
        load_efficientnet_pytorch(tiny(B0, padding=Padding.SYMMETRIC), sd)
    with torch.device("meta"):
        model = create_model("efficientnet_b0")
    message = "efficientnet_b0 uses 'symmetric' padding; use tf_efficientnet_b0$"
    with pytest.raises(EffnetError, match=message):
        load_foreign(model, meta_state_dict("efficientnet-b0"))


# -- every full-size model, key for key ---------------------------------------------------------
def test_manifests_cover_the_released_models():
    assert VERSION == "0.7.1"
    assert sorted(MANIFESTS) == sorted(
        [f"efficientnet-b{i}" for i in range(9)] + ["efficientnet-l2", "efficientnet-lite0"]
    )


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_full_size_model_maps_key_for_key(name):
    with torch.device("meta"):
        model = create_model(OURS[name])
    target = model.state_dict()
    sd = meta_state_dict(name)
    mapped = map_efficientnet_pytorch(sd, target)
    assert list(mapped) == list(target)  # every tensor used, same order
    assert all(mapped[k][1].shape == t.shape for k, t in target.items())
    assert sum(p.numel() for p in model.parameters()) == MANIFESTS[name]["params"]
    assert detect_source(sd, model) == "efficientnet_pytorch"
    loaded = load_foreign(model, sd)
    assert (loaded.source, loaded.eps, model.bn1.eps) == ("efficientnet_pytorch", 1e-3, 1e-3)


# -- wrong checkpoints: one line naming the first tensor that does not fit ---------------------
def _load_meta(model_name: str, sd: dict) -> None:
    with torch.device("meta"):
        model = create_model(model_name)
    load_foreign(model, sd, source="efficientnet_pytorch")


def test_other_size_names_first_mismatch():
    b1 = meta_state_dict("efficientnet-b1")
    with pytest.raises(EffnetError) as e:
        _load_meta("tf_efficientnet_b0", b1)
    assert str(e.value) == (
        "efficientnet_pytorch checkpoint has no tensor for 'blocks.1.0.conv_pw.weight' of "
        "tf_efficientnet_b0 (4 more)"
    )
    message = (r"tensor '_conv_stem.weight' \(ours: 'conv_stem.weight'\) has shape 40x3x3x3 "
               "but tf_efficientnet_b0 expects 32x3x3x3")  # fmt: skip
    with pytest.raises(EffnetError, match=message):
        _load_meta("tf_efficientnet_b0", meta_state_dict("efficientnet-b3"))


def test_extra_and_missing_tensors_are_named():
    sd = meta_state_dict("efficientnet-b0")
    sd["_blocks.16._depthwise_conv.weight"] = torch.empty(8, 1, 3, 3, device="meta")
    message = ("tensor '_blocks.16._depthwise_conv.weight' has no counterpart in "
               "tf_efficientnet_b0 - is the checkpoint another")  # fmt: skip
    with pytest.raises(EffnetError, match=message):
        _load_meta("tf_efficientnet_b0", sd)
    sd = meta_state_dict("efficientnet-b0")
    del sd["_blocks.3._se_reduce.bias"]
    with pytest.raises(EffnetError, match="no tensor for 'blocks.2.0.se.conv_reduce.bias'"):
        _load_meta("tf_efficientnet_b0", sd)
    sd = meta_state_dict("efficientnet-b0")
    sd["_blocks.4._squeeze.weight"] = sd.pop("_blocks.4._se_reduce.weight")
    with pytest.raises(EffnetError, match="no tensor for 'blocks.2.1.se.conv_reduce.weight'"):
        _load_meta("tf_efficientnet_b0", sd)


def test_lite_checkpoint_into_b0_and_other_formats_fail_in_one_line():
    with pytest.raises(EffnetError, match=r"no tensor for 'blocks.0.0.se.conv_reduce.weight'"):
        _load_meta("tf_efficientnet_b0", meta_state_dict("efficientnet-lite0"))
    timm_sd, _ = read_safetensors(FIXTURES / "timm_tf_efficientnet_w0125_d11.safetensors")
    with pytest.raises(EffnetError, match="efficientnet_pytorch checkpoint has no tensor for "
                       "'conv_stem.weight'"):  # fmt: skip
        load_foreign(
            create_model("tf_efficientnet_b0", width=0.125, depth=1.1, num_classes=10),
            timm_sd,
            source="efficientnet_pytorch",
        )


# -- effnet convert ------------------------------------------------------------------------------
def test_cli_convert_with_source_and_auto_detection(tmp_path, capsys):
    sd, x, y = fixture(B0)
    torch.save(sd, tmp_path / "b0.pth")
    arch = tmp_path / "tiny.json"
    tiny(B0).arch.save(arch)
    for extra in (["--source", "efficientnet_pytorch"], []):
        out = tmp_path / f"out{len(extra)}"
        argv = ["convert", str(tmp_path / "b0.pth"), "--model", str(arch), "--out", str(out),
                "--num-classes", "10", *extra]  # fmt: skip
        assert main(argv) == 0
        assert f"loaded {len(sd)} tensors (efficientnet_pytorch, batch-norm eps 0.001)" in (
            capsys.readouterr().out
        )
        model = from_pretrained(out)
        assert model.arch.padding is Padding.SAME
        assert (run(model, x) - y).abs().max() < 1e-4


def test_cli_convert_refuses_wrong_model_in_one_line(tmp_path, capsys):
    torch.save(fixture(B0)[0], tmp_path / "b0.pth")
    argv = ["convert", str(tmp_path / "b0.pth"), "--model", "tf_efficientnet_lite0",
            "--out", str(tmp_path / "out"), "--source", "efficientnet_pytorch"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("effnet: error: efficientnet_pytorch tensor '_conv_stem.weight'")


def test_converted_lite0_predicts_with_lite_preprocessing(tmp_path, capsys):
    torch.save(random_state_dict("efficientnet-lite0"), tmp_path / "lite0.pth")
    out = tmp_path / "lite0"
    argv = ["convert", str(tmp_path / "lite0.pth"), "--model", "tf_efficientnet_lite0",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert "(efficientnet_pytorch, batch-norm eps 0.001)" in capsys.readouterr().out
    pre = Preprocess.of(from_pretrained(out))
    assert (pre.resolution, pre.crop_pct, pre.interpolation) == (224, 0.875, "bicubic")
    assert pre.mean == pre.std == (0.5, 0.5, 0.5)
    assert read_config(out)["effnet_architecture"]["activation"] == "relu6"
    Image.new("RGB", (300, 260), (120, 30, 200)).save(tmp_path / "x.png")
    assert main(["predict", str(out), str(tmp_path / "x.png"), "--backend", "eager",
                 "--top-k", "1", "--json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["predictions"][0]["top_k"][0]["index"] >= 0


def test_converted_tiny_lite0_predicts_with_exactly_lites_transform(tmp_path, capsys):
    """The tiny Lite fixture through ``effnet convert`` and ``effnet predict``: config.json
    carries Lite's preprocessing, and predict's probabilities are the model's on the image
    prepared by hand (Pillow, numpy) with mean = std = 0.5, bicubic, crop 0.875; ImageNet's
    mean/std or bilinear resizing would give others (so the comparison can fail)."""
    sd, _, _ = fixture(LITE0)
    torch.save(sd, tmp_path / "lite0.pth")
    arch = tmp_path / "tiny_lite0.json"
    tiny(LITE0, resolution=45).arch.save(arch)  # the size its static padding was built for
    out = tmp_path / "model"
    argv = ["convert", str(tmp_path / "lite0.pth"), "--model", str(arch), "--out", str(out),
            "--num-classes", "10"]  # fmt: skip
    assert main(argv) == 0
    assert "(efficientnet_pytorch, batch-norm eps 0.001)" in capsys.readouterr().out
    lite = {"resolution": 45, "crop_pct": 0.875, "interpolation": "bicubic",
            "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}  # fmt: skip
    assert json.loads((out / "config.json").read_text())["preprocessing"] == lite
    model = from_pretrained(out)
    assert Preprocess.of(model) == Preprocess(**{**lite, "mean": (0.5,) * 3, "std": (0.5,) * 3})

    image = tmp_path / "x.png"
    pixels = np.random.default_rng(0).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(image)
    argv = ["predict", str(out), str(image), "--backend", "eager", "--top-k", "10", "--json"]
    assert main(argv) == 0
    predicted = torch.zeros(10)
    for guess in json.loads(capsys.readouterr().out)["predictions"][0]["top_k"]:
        predicted[guess["index"]] = guess["probability"]

    def by_hand(mean, std, resample) -> torch.Tensor:
        # shorter side 70 -> floor(45 / 0.875) = 51, the other in proportion truncated as
        # torchvision's Resize does (65), center 45 (offsets rounded: 10, 3)
        img = Image.open(image).convert("RGB").resize((65, 51), resample)
        a = np.asarray(img.crop((10, 3, 55, 48)), np.float32) / 255
        x = torch.from_numpy((a - np.float32(mean)) / np.float32(std)).permute(2, 0, 1)
        return run(model, x[None]).softmax(1)[0]

    bicubic, bilinear = Image.Resampling.BICUBIC, Image.Resampling.BILINEAR
    assert (by_hand(0.5, 0.5, bicubic) - predicted).abs().max() < 1e-5
    imagenet = by_hand([0.485, 0.456, 0.406], [0.229, 0.224, 0.225], bicubic)
    assert (imagenet - predicted).abs().max() > 1e-3
    assert (by_hand(0.5, 0.5, bilinear) - predicted).abs().max() > 1e-3


class Payload:
    """Unpickling this runs a shell command (touches a file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_would_run_code_is_refused_not_executed(tmp_path, capsys):
    marker = tmp_path / "pwned"
    torch.save({"state_dict": fixture(B0)[0], "hook": Payload(marker)}, tmp_path / "evil.pth")
    argv = ["convert", str(tmp_path / "evil.pth"), "--model", "tf_efficientnet_b0",
            "--out", str(tmp_path / "out"), "--source", "efficientnet_pytorch"]  # fmt: skip
    assert main(argv) == 2
    assert "refusing to load" in capsys.readouterr().err and not marker.exists()
    assert not (tmp_path / "out").exists()


# -- against the package itself (reference environment only) ----------------------------------
REFERENCE = Path(os.environ.get("EFFNET_REFERENCE_ENV", "/opt/effnet-reference"))
TOOL = ROOT / "tools" / "make_efficientnet_pytorch_fixtures.py"
FULL = {"efficientnet-b0:224:224": "tf_efficientnet_b0",
        "efficientnet-b3:300:300": "tf_efficientnet_b3",
        "efficientnet-lite0:224:224": "tf_efficientnet_lite0"}  # fmt: skip


@pytest.mark.reference
@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("spec", sorted(FULL))
def test_full_size_outputs_match_the_package(request, tmp_path, spec):
    if "reference" not in (request.config.option.markexpr or ""):
        pytest.skip("minutes: run with -m reference")
    if not (REFERENCE / "bin" / "python").exists():
        pytest.skip("no reference environment")
    torch.set_num_threads(2)
    cmd = [str(REFERENCE / "bin" / "python"), str(TOOL), "full", str(tmp_path), spec]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    stem = tmp_path / f"efficientnet_pytorch_{spec.replace(':', '_')}"
    model = create_model(FULL[spec], pretrained=stem.with_suffix(".safetensors")).eval()
    io, _ = read_safetensors(stem.with_suffix(".io.safetensors"))
    diff = (run(model, io["input"]) - io["output"]).abs().max().item()
    print(f"{spec}: max abs difference {diff:.3g}", file=sys.stderr)
    assert diff < 1e-4
