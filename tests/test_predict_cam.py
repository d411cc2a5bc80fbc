"""predict and cam on generated images: the model's own preprocessing, every Pillow mode,
corrupt and missing files skipped by name, and class activation maps that peak where the
evidence is.

The "patch detector" is a tiny network (output stride 4) whose 2-class classifier is set,
from two calibration images, to separate "a bright square somewhere" from "plain dark":
row = mean feature with the patch minus mean feature without. Tested on squares at other
places, it must still say "patch", and its CAM must peak inside the square.
"""

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from effnet import Architecture, Block, EffnetError, Head, Stage, Stem
from effnet.cam import class_activation_maps, overlay
from effnet.cli import main
from effnet.images import Preprocess, center_crop, load, load_batch, open_image, to_tensor
from effnet.infer import Runner
from effnet.model import build
from effnet.weights import save_pretrained

pytestmark = pytest.mark.usefixtures("one_thread")


MB = Block.MBCONV
TINY = Architecture(
    name="tiny_cam",
    stem=Stem(out_channels=8, stride=2),
    stages=(
        Stage(MB, kernel=3, stride=1, out_channels=8, layers=1, expand=1, se=0.25),
        Stage(MB, kernel=3, stride=2, out_channels=16, layers=1, expand=4, se=0.25),
        Stage(MB, kernel=3, stride=1, out_channels=16, layers=1, expand=4, se=0.25),
    ),
    head=Head(out_channels=32),
    resolution=64,
    crop_pct=1.0,
    interpolation="bilinear",
    drop_path=0.0,
)
SQUARE = 12


def patch_image(left: int, top: int, size: int = 64) -> Image.Image:
    a = np.full((size, size, 3), 30, np.uint8)
    if left >= 0:
        a[top : top + SQUARE, left : left + SQUARE] = 250
    return Image.fromarray(a)


def as_input(img: Image.Image, model) -> torch.Tensor:
    pre = Preprocess.of(model)
    return to_tensor(center_crop(img, pre), pre)[None]


@pytest.fixture(scope="module")
def detector():
    torch.manual_seed(0)
    model = build(TINY, num_classes=2).eval()
    with torch.no_grad():
        pooled = [
            model.forward_head(model.forward_features(as_input(img, model)), pre_logits=True)[0]
            for img in (patch_image(-1, 0), patch_image(10, 10))
        ]
        w = pooled[1] - pooled[0]
        b = -(w @ (pooled[0] + pooled[1])) / 2
        k = 8.0 / (w @ w)  # calibration images 8 logits apart: confident, same decisions
        w, b = k * w, k * b
        model.classifier.weight.copy_(torch.stack([-w, w]))
        model.classifier.bias.copy_(torch.stack([-b, b]))
    model.class_names = ["plain", "patch"]
    return model


@pytest.fixture(scope="module")
def saved(detector, tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "detector"
    save_pretrained(detector, folder, class_names=["plain", "patch"])
    return folder


@pytest.fixture
def images(tmp_path):
    patch_image(40, 36).save(tmp_path / "patch.png")
    patch_image(6, 44).save(tmp_path / "patch_low.jpg", quality=95)
    patch_image(30, 8).convert("L").save(tmp_path / "patch_gray.png")
    patch_image(-1, 0).save(tmp_path / "plain.png")
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    return tmp_path


def valid_png(path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        return img.size


# -- the images module --------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["RGB", "L", "P", "RGBA", "LA", "CMYK", "I;16", "1"])
def test_any_pillow_mode_loads_as_rgb_or_gray(tmp_path, mode):
    img = patch_image(20, 20).convert(mode) if mode != "I;16" else Image.new("I;16", (64, 64))
    path = tmp_path / ("x.tiff" if mode in ("CMYK", "I;16") else "x.png")
    img.save(path)
    assert open_image(path, "RGB").mode == "RGB" and open_image(path, "L").mode == "L"
    t, crop = load(path, Preprocess(resolution=32))
    assert t.shape == (3, 32, 32) and crop.size == (32, 32)


def test_transparent_pixels_are_shown_on_white(tmp_path):
    Image.new("RGBA", (8, 8), (255, 0, 0, 0)).save(tmp_path / "clear.png")
    assert open_image(tmp_path / "clear.png").getpixel((3, 3)) == (255, 255, 255)


def test_preprocessing_comes_from_the_architecture():
    arch = TINY.replace(mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0), resolution=40, crop_pct=0.8)
    pre = Preprocess.of(build(arch, num_classes=2))
    assert (pre.resolution, pre.crop_pct, pre.resize_to) == (40, 0.8, 50)
    t = to_tensor(center_crop(Image.new("RGB", (90, 70), (51, 51, 51)), pre), pre)
    assert t.shape == (3, 40, 40)
    assert torch.allclose(t[:, 0, 0], torch.tensor([(0.2 - 0.5) / 0.5, (0.2 - 0.25) / 0.25, 0.2]))
    gray = Preprocess.of(build(arch, num_classes=2, in_chans=1))
    g = to_tensor(center_crop(Image.new("RGB", (40, 40), (51, 51, 51)), gray), gray)
    assert g.shape == (1, 40, 40)
    assert torch.allclose(g[0, 0, 0], torch.tensor((0.2 - 0.25) / (1.75 / 3)))


def test_center_crop_keeps_the_center_and_the_crop_fraction():
    a = np.zeros((200, 300, 3), np.uint8)
    a[95:105, 145:155] = 255  # a dot at the center of a landscape image
    pre = Preprocess(resolution=64, crop_pct=0.875, interpolation="bilinear")
    crop = np.asarray(center_crop(Image.fromarray(a), pre))
    assert crop.shape == (64, 64, 3) and crop[32, 32].min() > 200 and crop[2, 2].max() == 0
    # shorter side -> floor(64 / 0.875) = 73, so the 10 px dot becomes ~3.65 px wide
    assert 3 <= (crop[32, :, 0] > 127).sum() <= 5


@settings(max_examples=30, deadline=None)
@given(
    w=st.integers(1, 400),
    h=st.integers(1, 400),
    res=st.integers(8, 96),
    pct=st.floats(0.5, 1.0),
)
def test_center_crop_is_always_square_at_the_resolution(w, h, res, pct):
    pre = Preprocess(resolution=res, crop_pct=pct, interpolation="bilinear")
    assert center_crop(Image.new("RGB", (w, h)), pre).size == (res, res)


def test_batch_reports_missing_and_corrupt_files_by_name(images):
    paths = [
        images / "patch.png",
        images / "corrupt.jpg",
        images / "nope.png",
        images / "plain.png",
    ]
    batch = load_batch(paths, Preprocess(resolution=32))
    assert batch.tensor.shape == (2, 3, 32, 32)
    assert [p.split("/")[-1] for p in batch.paths] == ["patch.png", "plain.png"]
    failed = dict(batch.failed)
    assert "corrupt.jpg: not a readable image" in failed[str(images / "corrupt.jpg")]
    assert "nope.png: no such image file" in failed[str(images / "nope.png")]
    with pytest.raises(EffnetError, match="1 or 3 input channels"):
        Preprocess(resolution=32, in_chans=4)


# -- predict -------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_detector_finds_squares_it_was_not_shown(detector, images, backend):
    runner = Runner(detector, backend=backend, threads=1, class_names=detector.class_names)
    names = ["patch.png", "patch_low.jpg", "patch_gray.png", "plain.png"]
    batch = load_batch([images / n for n in names], Preprocess.of(detector))
    top = [guesses[0].label for guesses in runner.top_k(batch.tensor, k=2)]
    assert top == ["patch", "patch", "patch", "plain"]


def test_cli_predict_skips_bad_files_and_prints_json(saved, images, capsys):
    names = ["patch.png", "corrupt.jpg", "missing.png", "plain.png"]
    args = ["predict", str(saved), *(str(images / n) for n in names), "--json", "--top-k", "2"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "corrupt.jpg" in captured.err and "missing.png" in captured.err
    out = json.loads(captured.out)
    got = {p["image"].split("/")[-1]: p["top_k"] for p in out["predictions"]}
    assert got["patch.png"][0]["label"] == "patch" and got["plain.png"][0]["label"] == "plain"
    assert abs(sum(g["probability"] for g in got["patch.png"]) - 1.0) < 1e-5
    assert {e["image"].split("/")[-1] for e in out["errors"]} == {"corrupt.jpg", "missing.png"}


def test_cli_predict_text_and_exit_code_when_nothing_is_readable(saved, images, capsys, tmp_path):
    classes = tmp_path / "classes.txt"
    classes.write_text("nothing\nsquare\n")
    assert main(["predict", str(saved), str(images / "patch_gray.png"), "--top-k", "1",
                 "--classes", str(classes), "--backend", "torch"]) == 0  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("patch_gray.png") and "square" in out[1]
    assert main(["predict", str(saved), str(images / "corrupt.jpg"), "nope.png"]) == 2
    assert "no image could be read" in capsys.readouterr().err


# -- class activation maps ---------------------------------------------------------------------
@pytest.mark.parametrize("left, top", [(40, 36), (6, 44), (30, 8)])
def test_cam_peaks_inside_the_square(detector, left, top):
    (cam,) = class_activation_maps(detector, as_input(patch_image(left, top), detector))
    assert cam.class_index == 1 and cam.probability > 0.5
    assert cam.map.shape == (64, 64) and cam.map.max() == pytest.approx(1.0)
    y, x = np.unravel_index(cam.map.argmax(), cam.map.shape)
    margin = 3  # the feature map has stride 4
    assert left - margin <= x < left + SQUARE + margin and top - margin <= y < top + SQUARE + margin
    inside = cam.map[top : top + SQUARE, left : left + SQUARE].mean()
    assert inside > 2 * cam.map.mean()


def test_cam_for_a_given_class_and_bad_class(detector):
    x = as_input(patch_image(40, 36), detector)
    (cam,) = class_activation_maps(detector, x, class_index=0)
    assert cam.class_index == 0 and cam.probability < 0.5
    with pytest.raises(EffnetError, match="--class"):
        class_activation_maps(detector, x, class_index=2)


def test_overlay_colours_the_hot_region():
    cam = np.zeros((16, 16), np.float32)
    cam[:8] = 1.0
    out = np.asarray(overlay(Image.new("RGB", (32, 32), (128, 128, 128)), cam, alpha=1.0))
    assert out.shape == (32, 32, 3)
    assert out[2, 2, 0] > 100 and out[2, 2, 2] < 50  # jet: hot is red
    assert out[30, 30, 2] > 100 and out[30, 30, 0] < 50  # cold is blue


def test_cli_cam_writes_pngs_and_refuses_to_overwrite(saved, images, tmp_path, capsys):
    out = tmp_path / "cams"
    args = ["cam", str(saved), str(images / "patch.png"), str(images / "patch_gray.png"),
            str(images / "corrupt.jpg"), "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    assert "corrupt.jpg" in capsys.readouterr().err
    pngs = sorted(p.name for p in out.iterdir())
    assert pngs == ["patch_cam.png", "patch_gray_cam.png"]
    assert valid_png(out / "patch_cam.png") == (64, 64)
    hot = np.asarray(Image.open(out / "patch_cam.png"))[42, 46]  # inside the square: red
    assert hot[0] > hot[2]
    before = (out / "patch_cam.png").read_bytes()
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "patch_cam.png").read_bytes() == before
    assert main([*args, "--force", "--class", "0"]) == 0


def test_cli_cam_models_side_by_side(saved, images, tmp_path):
    other = tmp_path / "other.json"
    TINY.replace(name="tiny_other", resolution=48).save(other)
    out = tmp_path / "fig"
    args = ["cam", str(saved), str(images / "patch.png"), "--out", str(out),
            "--models", str(other), str(saved), "--num-classes", "2"]  # fmt: skip
    assert main(args) == 0
    w, h = valid_png(out / "patch_cam_models.png")
    assert w > 3 * h  # the image and three models in one row


def test_cli_predict_on_an_exported_file(saved, images, tmp_path, capsys):
    onnx_file = tmp_path / "detector.onnx"
    args = ["export", str(saved), "--image-size", "48", "--dynamic-batch", "--out", str(onnx_file)]
    assert main(args) == 0
    assert "48px" in capsys.readouterr().out
    names = ["patch.png", "plain.png", "patch_low.jpg"]
    assert main(["predict", str(onnx_file), *(str(images / n) for n in names), "--json"]) == 0
    got = [p["top_k"][0]["label"] for p in json.loads(capsys.readouterr().out)["predictions"]]
    assert got == ["patch", "plain", "patch"]  # class names and 48 px preprocessing from the file
