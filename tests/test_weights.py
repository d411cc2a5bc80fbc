"""Weights in and out: timm/torchvision fixtures reproduce their outputs, our format
round-trips bit-exactly, and loading never runs code from a file.

The fixtures were made with the real timm 1.0.31 and torchvision 0.28
(tools/make_weight_fixtures.py): width 0.125, depth 1.1 versions of EfficientNet-B0
(23 blocks, the released block structure), random weights with randomised batch-norm
statistics whose variances are small enough that the epsilon visibly matters.
"""

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

import effnet
from effnet import EffnetError, Padding, create_model
from effnet.weights import (
    detect_source,
    from_pretrained,
    load_foreign,
    load_pretrained,
    load_timm,
    load_torchvision,
    read_config,
    save_pretrained,
)
from effnet.weights.foreign import adapt_stem, set_eps
from effnet.weights.safe import read_safetensors

FIXTURES = Path(__file__).parent / "fixtures" / "weights"
INDEX = json.loads((FIXTURES / "fixtures.json").read_text())
TIMM = "timm_efficientnet_w0125_d11"
TIMM_TF = "timm_tf_efficientnet_w0125_d11"
TORCHVISION = "torchvision_efficientnet_w0125_d11"


pytestmark = pytest.mark.usefixtures("one_thread")


def ours(name: str, **kw) -> torch.nn.Module:
    """Our model with the fixture's architecture (and the given overrides)."""
    meta = INDEX[name]
    opts = dict(width=meta["width"], depth=meta["depth"], padding=Padding(meta["padding"]))
    opts.update(kw)
    num_classes = opts.pop("num_classes", meta["num_classes"])
    return create_model("efficientnet_b0", num_classes=num_classes, **opts).eval()


def fixture(name: str) -> tuple[dict, torch.Tensor, torch.Tensor]:
    sd, _ = read_safetensors(FIXTURES / f"{name}.safetensors")
    io, _ = read_safetensors(FIXTURES / f"{name}.io.safetensors")
    return sd, io["input"], io["output"]


def run(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


# -- equivalence with the reference implementations ------------------------------------------
@pytest.mark.parametrize(
    "name, source, eps",
    [(TIMM, "timm", 1e-5), (TIMM_TF, "timm", 1e-3), (TORCHVISION, "torchvision", 1e-5)],
)
def test_fixture_outputs_reproduced(name, source, eps):
    sd, x, y = fixture(name)
    model = ours(name)
    assert detect_source(sd, model) == source
    loaded = load_pretrained(model, FIXTURES / f"{name}.safetensors")
    assert (loaded.source, loaded.tensors, loaded.eps) == (source, len(sd), eps)
    assert model.arch.norm.eps == eps and model.bn1.eps == eps
    assert (run(model, x) - y).abs().max() < 1e-4
    # the test can fail: the other epsilon, or the other padding, changes the output
    set_eps(model, 1e-3 if eps == 1e-5 else 1e-5)
    assert (run(model, x) - y).abs().max() > 1e-2


def test_tf_fixture_needs_same_padding():
    sd, x, y = fixture(TIMM_TF)
    model = ours(TIMM_TF, padding=Padding.SYMMETRIC)
    load_timm(model, sd)
    assert model.arch.norm.eps == 1e-5  # symmetric padding means timm's PyTorch-trained family
    load_foreign(model, sd, source="timm", eps=1e-3)
    assert (run(model, x) - y).abs().max() > 1e-2


def test_tf_registry_names_use_tensorflow_conventions():
    arch = effnet.get_arch("tf_efficientnet_b3")
    ref = effnet.get_arch("efficientnet_b3")
    assert arch.padding is Padding.SAME and arch.norm.eps == 1e-3
    assert arch.replace(name=ref.name, padding=ref.padding) == ref
    assert "tf_efficientnet_l2" in effnet.list_models()


def test_pth_checkpoints_in_training_containers(tmp_path):
    sd, x, y = fixture(TORCHVISION)
    wrapped = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in sd.items()}}
    torch.save(wrapped, tmp_path / "tv.pth.tar")
    model = ours(TORCHVISION)
    assert load_pretrained(model, tmp_path / "tv.pth.tar").source == "torchvision"
    assert (run(model, x) - y).abs().max() < 1e-4
    sd, x, y = fixture(TIMM)
    torch.save(sd, tmp_path / "timm.bin")
    model = create_model(
        "efficientnet_b0", num_classes=10, width=0.125, depth=1.1, pretrained=tmp_path / "timm.bin"
    ).eval()
    assert (run(model, x) - y).abs().max() < 1e-4


def test_load_torchvision_explicit_and_timm_hub_folder(tmp_path):
    sd, x, y = fixture(TORCHVISION)
    model = ours(TORCHVISION)
    load_torchvision(model, sd)
    assert (run(model, x) - y).abs().max() < 1e-4
    sd, x, y = fixture(TIMM)
    hub = tmp_path / "hub"
    hub.mkdir()
    (hub / "config.json").write_text(json.dumps({"architecture": "efficientnet_b0"}))
    save_file(sd, hub / "model.safetensors")
    model = ours(TIMM)
    assert load_pretrained(model, hub).source == "timm"
    assert (run(model, x) - y).abs().max() < 1e-4


def test_grayscale_model_adapts_the_rgb_stem():
    sd, x, _ = fixture(TIMM)
    rgb, gray = ours(TIMM), ours(TIMM, in_chans=1)
    load_timm(rgb, sd)
    load_timm(gray, sd)
    g = x[:, :1]
    assert (run(gray, g) - run(rgb, g.expand(-1, 3, -1, -1))).abs().max() < 1e-4


@settings(max_examples=25, deadline=None)
@given(k=st.integers(1, 4), seed=st.integers(0, 1000))
def test_adapted_stem_sees_a_repeated_image_as_rgb(k, seed):
    """timm's rule: a grey image on a 1-channel stem, and an RGB image repeated k times on
    a 3k-channel stem, get the RGB stem's response."""
    g = torch.Generator().manual_seed(seed)
    w, img = torch.randn(4, 3, 3, 3, generator=g), torch.randn(1, 3, 5, 5, generator=g)
    conv = torch.nn.functional.conv2d
    rgb = conv(img, w)
    assert torch.allclose(conv(img.repeat(1, k, 1, 1), adapt_stem(w, 3 * k)), rgb, atol=1e-4)
    grey = img[:, :1]
    assert torch.allclose(conv(grey, adapt_stem(w, 1)), conv(grey.expand(-1, 3, -1, -1), w),
                          atol=1e-4)  # fmt: skip


def test_adapted_stem_matches_timms_adapt_input_conv():
    """timm 1.0's adapt_input_conv for in_chans 2 and 5 (its formula, values from the
    reference env): channels repeated cyclically, scaled by 3 / in_chans."""
    w = torch.arange(1.0, 4.0).view(1, 3, 1, 1)  # R=1, G=2, B=3
    assert adapt_stem(w, 2).flatten().tolist() == [1.5, 3.0]
    assert adapt_stem(w, 5).flatten().tolist() == pytest.approx([0.6, 1.2, 1.8, 0.6, 1.2])


# -- mismatches name the first tensor --------------------------------------------------------
def test_wrong_width_names_first_mismatching_tensor():
    sd, _, _ = fixture(TIMM)
    model = ours(TIMM, width=0.25)
    with pytest.raises(EffnetError, match=r"'blocks\.2\.0\.conv_pwl\.weight' has shape 8x48x1x1 "):
        load_timm(model, sd)


def test_wrong_depth_names_first_extra_tensor():
    sd, _, _ = fixture(TORCHVISION)
    with pytest.raises(EffnetError, match=r"'features\.1\.1\.block\.0\.0\.weight' has no counter"):
        load_pretrained(ours(TORCHVISION, depth=1.0), FIXTURES / f"{TORCHVISION}.safetensors")


def test_other_num_classes_explains_reset_classifier():
    sd, _, _ = fixture(TIMM)
    with pytest.raises(EffnetError, match=r"classifier\.weight.*reset_classifier"):
        load_timm(ours(TIMM, num_classes=5), sd)


def test_missing_tensor_and_unknown_checkpoint():
    sd, _, _ = fixture(TIMM)
    partial = {k: v for k, v in sd.items() if k != "bn2.running_var"}
    with pytest.raises(EffnetError, match=r"no tensor for 'bn2\.running_var'"):
        load_timm(ours(TIMM), partial)
    with pytest.raises(EffnetError, match="unrecognised checkpoint"):
        load_foreign(ours(TIMM), {"encoder.weight": torch.zeros(1)})
    with pytest.raises(EffnetError, match="unknown weights source 'keras'"):
        load_foreign(ours(TIMM), sd, source="keras")


# -- our format ------------------------------------------------------------------------------
def test_save_and_load_round_trip_is_bit_exact(tmp_path):
    sd, x, y = fixture(TIMM)
    model = ours(TIMM)
    load_timm(model, sd)
    names = [f"class {i}" for i in range(10)]
    out = save_pretrained(model, tmp_path / "run", class_names=names)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    back = effnet.from_pretrained(str(out))
    assert back.class_names == names and not back.training
    assert back.arch == model.arch and back.arch.norm.eps == 1e-5
    a, b = model.state_dict(), back.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(run(back, x), run(model, x))
    config = read_config(out)
    assert config["preprocessing"] == {
        "resolution": 224, "crop_pct": 0.875, "interpolation": "bicubic",
        "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
    }  # fmt: skip
    assert (config["num_classes"], config["in_chans"]) == (10, 3)
    fresh = ours(TIMM)  # eps 1e-3 until loaded: the saved epsilon comes along
    load_pretrained(fresh, out)
    assert fresh.arch.norm.eps == 1e-5 and fresh.class_names == names
    assert torch.equal(run(fresh, x), run(model, x))


def test_save_refuses_to_overwrite_and_checks_class_names(tmp_path):
    model = ours(TIMM)
    save_pretrained(model, tmp_path / "run")
    before = (tmp_path / "run" / "model.safetensors").read_bytes()
    with pytest.raises(EffnetError, match="not empty"):
        save_pretrained(ours(TIMM), tmp_path / "run")
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == before
    save_pretrained(model, tmp_path / "run", overwrite=True)
    with pytest.raises(EffnetError, match="class_names lists 3 names for a model of 10 classes"):
        save_pretrained(model, tmp_path / "other", class_names=["a", "b", "c"])
    assert from_pretrained(tmp_path / "run").class_names is None


def test_padding_mismatch_with_saved_model_is_an_error(tmp_path):
    save_pretrained(ours(TIMM_TF), tmp_path / "tf")
    with pytest.raises(EffnetError, match="'same' padding but .* uses 'symmetric'"):
        load_pretrained(ours(TIMM), tmp_path / "tf")


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(EffnetError, match="not found"):
        load_pretrained(ours(TIMM), tmp_path / "nope.pth")
    with pytest.raises(EffnetError, match="no config.json"):
        from_pretrained(tmp_path)
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(EffnetError, match="cannot read safetensors file"):
        load_pretrained(ours(TIMM), tmp_path / "bad.safetensors")
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(EffnetError, match="bad.pth"):
        load_pretrained(ours(TIMM), tmp_path / "bad.pth")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(EffnetError, match="holds no state dict"):
        load_pretrained(ours(TIMM), tmp_path / "list.pt")


# -- loading never runs code from the file ---------------------------------------------------
class Payload:
    """Unpickling this calls os.system: a checkpoint that would run code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_not_executed(tmp_path):
    sd, _, _ = fixture(TIMM)
    proof, marker = tmp_path / "proof", tmp_path / "pwned"
    with open(tmp_path / "proof.pkl", "wb") as f:
        pickle.dump(Payload(proof), f)
    with open(tmp_path / "proof.pkl", "rb") as f:
        pickle.load(f)  # the unrestricted unpickler does run it: the payload is real
    assert proof.exists()
    torch.save({"state_dict": sd, "hook": Payload(marker)}, tmp_path / "evil.pth")
    with open(tmp_path / "evil.bin", "wb") as f:
        pickle.dump(Payload(marker), f)
    for name in ("evil.pth", "evil.bin"):
        with pytest.raises(EffnetError, match=f"refusing to load .*{name}.*could run code"):
            create_model("efficientnet_b0", width=0.125, depth=1.1, num_classes=10,
                         pretrained=tmp_path / name)  # fmt: skip
        assert not marker.exists()


# -- effnet convert --------------------------------------------------------------------------
def test_cli_convert_writes_a_model_directory(tmp_path, capsys):
    from effnet.cli import main

    sd, x, y = fixture(TIMM_TF)
    torch.save(sd, tmp_path / "tf.pth")
    arch = tmp_path / "tf_tiny.json"
    effnet.get_arch("tf_efficientnet_b0", width=0.125, depth=1.1).save(arch)
    (tmp_path / "classes.txt").write_text("".join(f"c{i}\n" for i in range(10)))
    argv = ["convert", str(tmp_path / "tf.pth"), "--model", str(arch), "--out",
            str(tmp_path / "out"), "--num-classes", "10",
            "--class-names", str(tmp_path / "classes.txt")]  # fmt: skip
    assert main(argv) == 0
    assert "loaded 508 tensors (timm, batch-norm eps 0.001)" in capsys.readouterr().out
    model = from_pretrained(tmp_path / "out")
    assert model.class_names[9] == "c9" and model.arch.padding is Padding.SAME
    assert (run(model, x) - y).abs().max() < 1e-4
    assert main(argv) == 2  # refuses to replace the directory without --force
    assert "not empty" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0
