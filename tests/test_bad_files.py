"""Files that hurt: unreadable class folders, symlink loops, one-class trees, decompression
bombs, outputs that would overwrite each other, and the permissions of what we write."""

from __future__ import annotations

import os
import stat
import struct
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image

from effnet.cam import output_stems as _unique_stems
from effnet.cli import main
from effnet.data import DataSpec, load_splits
from effnet.data.imagefolder import ImageFolder, class_folders, decode
from effnet.errors import EffnetError
from effnet.images import Preprocess, load_batch
from effnet.weights import save_pretrained

pytestmark = pytest.mark.usefixtures("one_thread")


def png_header(width: int, height: int) -> bytes:
    """A PNG of a few bytes whose header claims ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def tree(root: Path, classes: tuple[str, ...] = ("cat", "dog"), per_class: int = 3) -> Path:
    for split in ("train", "val"):
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", (20 + i, 16), (60 * c, 90, 30 * i)).save(folder / f"{i}.png")
    return root


# -- ImageFolder ----------------------------------------------------------------------------
def test_unreadable_class_folder_is_an_error_naming_it(tmp_path, monkeypatch):
    root = tree(tmp_path / "pets")
    dog = root / "train" / "dog"
    if os.geteuid() != 0:
        dog.chmod(0)
    else:  # root reads anything: make the folder refuse as an unreadable one would
        real = os.scandir

        def scandir(path: object = ".") -> object:
            if Path(os.fsdecode(path)) == dog:
                raise PermissionError(13, "Permission denied", os.fsdecode(path))
            return real(path)

        monkeypatch.setattr(os, "scandir", scandir)
    try:
        with pytest.raises(EffnetError, match=f"cannot read image folder {dog}: Permission"):
            ImageFolder(root / "train", 16)
    finally:
        dog.chmod(0o755)


def test_symlink_loops_count_each_real_file_once(tmp_path):
    root = tree(tmp_path / "pets")
    cat = root / "train" / "cat"
    (cat / "loop").symlink_to(cat, target_is_directory=True)  # cat/loop/loop/... forever
    (cat / "up").symlink_to(root / "train", target_is_directory=True)  # into dog, and back
    (cat / "again.png").symlink_to(cat / "0.png")  # one file, two names
    ds = ImageFolder(root / "train", 16)
    assert len(ds) == 6 and sorted(ds.targets.tolist()) == [0, 0, 0, 1, 1, 1]
    assert all("/up/" not in path for path, label in ds.samples if label == 1)


def test_a_one_class_dataset_is_refused(tmp_path):
    root = tree(tmp_path / "pets", classes=("cat",))
    with pytest.raises(EffnetError, match="one class \\(cat\\).*at least two"):
        class_folders(root / "train")
    with pytest.raises(EffnetError, match="at least two"):
        load_splits(DataSpec(source=str(root), minival=0, image_size=16))


def test_decoder_attacks_are_bad_files_not_fatal(tmp_path):
    root = tree(tmp_path / "pets")
    bomb, long = root / "train" / "cat" / "bomb.png", root / "train" / "dog" / "long.png"
    bomb.write_bytes(png_header(30000, 30000))
    long.write_bytes(png_header(1, 1_000_000))
    splits = load_splits(DataSpec(source=str(root), minival=0, image_size=16, workers=0))
    assert sorted(splits.bad_files) == sorted([str(bomb), str(long)])
    assert len(splits.train) == 6
    with pytest.raises(EffnetError, match="too elongated"):
        decode(str(long), 16)  # a file that changed after the scan is caught at decode


def test_decoder_attacks_are_skipped_by_predict(tmp_path, capsys):
    (tmp_path / "bomb.png").write_bytes(png_header(30000, 30000))
    (tmp_path / "long.png").write_bytes(png_header(1_000_000, 1))
    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "ok.png")
    names = [str(tmp_path / n) for n in ("bomb.png", "ok.png", "long.png")]
    batch = load_batch(names, Preprocess(resolution=32))
    assert batch.paths == (names[1],) and [p for p, _ in batch.failed] == [names[0], names[2]]
    code = main(["predict", "efficientnet_b0", "--image-size", "32", "--num-classes", "3",
                 "--backend", "eager", "--top-k", "1", *names])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0 and out.splitlines()[0] == names[1]
    assert err.count("effnet: skipped") == 2 and "too elongated" in err


# -- outputs ----------------------------------------------------------------------------------
def test_cam_outputs_never_share_a_name():
    paths = ["a/x.png", "b/x.png", "c/x_1.png", "d/y.jpg", "e/x.jpg"]
    names = _unique_stems(paths)
    assert len(set(names)) == len(names)
    assert names[2] == "x_1" and names[3] == "y"


def test_cam_with_two_x_png_in_different_folders(tmp_path, capsys):
    for folder, colour in (("a", (200, 30, 30)), ("b", (30, 30, 200))):
        (tmp_path / folder).mkdir()
        Image.new("RGB", (40, 40), colour).save(tmp_path / folder / "x.png")
    out = tmp_path / "cams"
    code = main(["cam", "efficientnet_b0", "--image-size", "32", "--num-classes", "3",
                 str(tmp_path / "a" / "x.png"), str(tmp_path / "b" / "x.png"),
                 "--out", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["x_1_cam.png", "x_2_cam.png"]


def test_saved_weights_get_the_usual_permissions(tmp_path):
    from effnet.hub import create_model

    umask = os.umask(0o022)
    try:
        model = create_model("efficientnet_b0", num_classes=2, width=0.25, resolution=32)
        folder = save_pretrained(model, tmp_path / "m")
    finally:
        os.umask(umask)
    for name in ("model.safetensors", "config.json"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o644, name


def test_predict_num_classes_must_be_positive(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "efficientnet_b0", "x.png", "--num-classes", "0"])
    assert "--num-classes: must be >= 1" in capsys.readouterr().err


@pytest.mark.slow
def test_build_refuses_what_cannot_fit_before_allocating():
    from effnet.memory import check_fits, estimate
    from effnet.model import build
    from effnet.profile import count_params
    from effnet.registry import get_arch

    arch = get_arch("efficientnet_b0")
    real = count_params(build(arch))
    est = estimate(arch)
    assert real <= est.values <= real * 1.02  # the estimate counts the BN buffers too
    with pytest.raises(EffnetError, match="needs about .* this machine has 1.0 GiB"):
        check_fits(get_arch("efficientnet_b0", depth=100.0), available=2**30)
    with pytest.raises(EffnetError, match="needs about"):
        build(get_arch("efficientnet_b0", width=1e5))
    with torch.device("meta"):  # a meta build needs no weights: B7 at 30x depth is fine
        build(get_arch("efficientnet_b7", depth=30.0))
