"""ImageFolder trees: decoding, splits, and bad files skipped, counted and listed."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from effnet.data import DataSpec, load_splits, make_loader
from effnet.data.imagefolder import decode
from effnet.errors import EffnetError


def _image(path, size, colour, fmt):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, fmt)


def _tree(root, split, per_class, colours=((200, 30, 30), (30, 30, 200))):
    for c, name in enumerate(("cat", "dog")):
        for i in range(per_class):
            fmt, ext = ("JPEG", "jpg") if i % 2 else ("PNG", "png")
            _image(root / split / name / f"{i}.{ext}", (40 + 7 * i, 30 + 3 * i), colours[c], fmt)


def _truncated_jpeg(path):
    buf = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buf, "JPEG", quality=95)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "pets"
    _tree(root, "train", 6)
    _tree(root, "val", 2)
    bad = {
        "truncated": root / "train" / "cat" / "truncated.jpg",
        "empty": root / "train" / "dog" / "empty.jpg",
        "text": root / "train" / "dog" / "notes.jpg",
    }
    _truncated_jpeg(bad["truncated"])
    bad["empty"].write_bytes(b"")
    bad["text"].write_text("not an image at all\n")
    (root / "train" / "dog" / "readme.txt").write_text("ignored: not an image extension")
    return root, bad


@pytest.mark.parametrize("workers", [0, 2])
def test_bad_files_are_skipped_counted_and_listed(tree, tmp_path, workers):
    root, bad = tree
    splits = load_splits(DataSpec(source=str(root), minival=2, image_size=24, workers=workers))
    assert splits.class_names == ["cat", "dog"] and splits.in_chans == 3
    # header-level failures are dropped while scanning; 12 good + the truncated one remain
    assert sorted(splits.bad_files) == sorted([str(bad["empty"]), str(bad["text"])])
    assert len(splits.train) + len(splits.minival) == 13 and len(splits.test) == 4
    seen = []
    for split in (splits.train, splits.minival, splits.test):
        loader = make_loader(split, 4, DataSpec(workers=workers))
        for images, labels in loader:
            assert images.shape[1:] == (3, 24, 24) and images.dtype == torch.uint8
            seen.append(len(labels))
    assert sum(seen) == 17  # the truncated sample was replaced, never dropped or fatal
    assert sorted(splits.bad_files) == sorted(str(p) for p in bad.values())
    assert splits.write_bad_files(tmp_path / "run" / "bad_files.txt") == 3
    listed = (tmp_path / "run" / "bad_files.txt").read_text().splitlines()
    assert sorted(listed) == sorted(str(p) for p in bad.values())


def test_decode_resizes_the_shorter_side_and_centre_crops(tmp_path):
    path = tmp_path / "wide.png"
    img = np.zeros((20, 60, 3), dtype=np.uint8)
    img[:, 20:40] = 255  # a white centre third
    Image.fromarray(img).save(path)
    out = decode(str(path), 10)
    assert out.shape == (3, 10, 10)
    assert (out[:, :, 1:-1] == 255).all()  # the centre crop is the white band
    Image.fromarray(img.transpose(1, 0, 2)).save(tmp_path / "tall.png")
    assert (decode(str(tmp_path / "tall.png"), 10)[:, 1:-1, :] == 255).all()


def test_grey_and_palette_images_become_rgb(tmp_path):
    Image.new("L", (16, 16), 77).save(tmp_path / "g.png")
    Image.new("P", (16, 16), 3).save(tmp_path / "p.gif")
    assert decode(str(tmp_path / "g.png"), 8).shape == (3, 8, 8)
    assert decode(str(tmp_path / "g.png"), 8)[:, 4, 4].tolist() == [77, 77, 77]
    assert decode(str(tmp_path / "p.gif"), 8).shape == (3, 8, 8)


def test_labels_follow_sorted_class_folders(tree):
    root, _ = tree
    splits = load_splits(DataSpec(source=str(root), minival=0, image_size=16))
    reds = [img[0].float().mean() > img[2].float().mean() for img, _ in splits.test]
    labels = [label for _, label in splits.test]
    assert labels == [0, 0, 1, 1] and reds == [True, True, False, False]


def test_a_test_folder_makes_val_the_minival(tree):
    root, _ = tree
    _tree(root, "test", 3)
    splits = load_splits(DataSpec(source=str(root), image_size=16))
    assert (len(splits.train), len(splits.minival), len(splits.test)) == (13, 4, 6)


def test_default_decode_size_follows_the_model_resolution(tree):
    root, _ = tree
    splits = load_splits(DataSpec(source=str(root), minival=0), resolution=32)
    assert splits.test[0][0].shape == (3, 64, 64)


@pytest.mark.parametrize(
    "layout, message",
    [
        (
            "missing",
            "neither 'fashion-mnist', a .npz file of arrays, nor an existing ImageFolder root",
        ),
        ("noval", "no val/ folder"),
    ],
)
def test_bad_sources_are_one_line_errors(tmp_path, layout, message):
    root = tmp_path / "data"
    if layout == "noval":
        _tree(root, "train", 1)
    with pytest.raises(EffnetError, match=message):
        load_splits(DataSpec(source=str(root)))


def test_val_class_missing_from_train_is_named(tree):
    root, _ = tree
    _image(root / "val" / "bird" / "0.png", (10, 10), (0, 0, 0), "PNG")
    with pytest.raises(EffnetError, match="bird"):
        load_splits(DataSpec(source=str(root), image_size=16))
