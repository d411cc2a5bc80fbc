"""Cases of the held-out audit (#35): images read as users' photos are, model folders
checked on load, data trees that say what they skipped, one line per problem."""

from __future__ import annotations

import json
import pickle
import warnings

import numpy as np
import pytest
from PIL import Image

from effnet import create_model, save_pretrained
from effnet.cli import main
from effnet.errors import EffnetError
from effnet.images import open_image

pytestmark = pytest.mark.usefixtures("one_thread")


# -- images as users have them -------------------------------------------------------------
def test_a_white_16_bit_image_is_white_not_stretched(tmp_path):
    path = tmp_path / "white16.png"
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(path)
    assert np.asarray(open_image(path, "L")).min() == 255
    grey = tmp_path / "grey16.png"  # a uniform mid grey stays mid grey (not black, not white)
    Image.fromarray(np.full((8, 8), 32896, np.uint16)).save(grey)
    assert np.asarray(open_image(grey, "L")).max() == 128


def test_exif_orientation_is_applied_by_every_reader(tmp_path):
    from effnet.data.imagefolder import decode

    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 20, 20))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to view"
    path = tmp_path / "phone.jpg"
    img.save(path, exif=exif, quality=95)
    shown = open_image(path)
    assert shown.size == (20, 40)  # portrait, as a viewer shows it
    top = np.asarray(shown)[:10].mean((0, 1))
    assert top[2] > 200 and top[0] < 60  # the blue half is now on top
    tensor = decode(str(path), 20)  # ImageFolder's decoder: the same picture
    assert tensor[2, :5].float().mean() > 200


def test_palette_and_cmyk_images_read_as_rgb(tmp_path):
    p = tmp_path / "p.png"
    Image.new("P", (8, 8), 3).save(p)
    c = tmp_path / "c.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(c)
    assert open_image(p).mode == "RGB" and open_image(c).mode == "RGB"
    assert np.asarray(open_image(c))[..., 0].mean() > 200  # CMYK (0, 1, 1, 0) is red


# -- model folders ---------------------------------------------------------------------------
def test_class_names_are_checked_when_a_model_folder_loads(tmp_path, capsys):
    model = create_model("efficientnet_b0", width=0.25, depth=0.25, num_classes=10)
    folder = save_pretrained(model, tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config["class_names"] = ["a", "b", "c"]
    (folder / "config.json").write_text(json.dumps(config))
    from effnet import from_pretrained

    with pytest.raises(EffnetError, match=r"class_names lists 3 names for a model of 10"):
        from_pretrained(folder)
    img = tmp_path / "x.png"
    Image.new("RGB", (32, 32)).save(img)
    assert main(["predict", str(folder), str(img), "--backend", "eager"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "class_names lists 3 names" in err
    config["class_names"] = ["a"] * 10
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(EffnetError, match=r"class name 'a' appears twice"):
        from_pretrained(folder)


def test_a_plain_pickle_is_refused_in_one_line_without_torchs_warning(tmp_path, capsys):
    class Payload:
        def __reduce__(self):
            return (print, ("ran",))

    path = tmp_path / "w.pt"
    path.write_bytes(pickle.dumps({"conv_stem.weight": Payload()}, protocol=4))
    from effnet.weights.safe import read_pickle

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning would fail here
        with pytest.raises(EffnetError, match=r"refusing to load"):
            read_pickle(path)


# -- data trees ------------------------------------------------------------------------------
def _tree(root, empty: bool):
    for split in ("train", "val"):
        for c in ("cat", "dog", "eel"):
            folder = root / split / c
            folder.mkdir(parents=True)
            if empty and split == "train" and c == "eel":
                continue
            for i in range(3):
                Image.new("RGB", (24, 24), (i * 40, 0, 0)).save(folder / f"{i}.png")
    return root


def test_an_empty_class_folder_is_an_error_naming_it_unless_allowed(tmp_path, capsys):
    from effnet.data import DataSpec, load_splits

    root = _tree(tmp_path / "data", empty=True)
    with pytest.raises(EffnetError, match=r"class folder .*train/eel holds no readable image"):
        load_splits(DataSpec(str(root), workers=0, minival=0))
    splits = load_splits(DataSpec(str(root), workers=0, minival=0, allow_empty_classes=True))
    assert splits.num_classes == 3
    assert "1 empty class folder(s) kept as classes: eel" in capsys.readouterr().err


def test_eval_reports_the_files_it_skipped(tmp_path):
    from effnet.data import DataSpec
    from effnet.train.evaluation import evaluate_run

    root = _tree(tmp_path / "data", empty=False)
    (root / "val" / "dog" / "broken.png").write_bytes(b"not a png")
    model = create_model("efficientnet_b0", width=0.25, depth=0.25, resolution=32,
                         num_classes=3, in_chans=3)  # fmt: skip
    result = evaluate_run(model, DataSpec(str(root), workers=0, minival=2), split="test")
    assert result["images"] == 9 and result["skipped"] == [str(root / "val" / "dog" / "broken.png")]


# -- predict: folders, globs, streaming, --out ----------------------------------------------------
def test_predict_takes_folders_and_globs_streams_and_writes_csv_and_json(tmp_path, capsys):
    import csv

    model = create_model("efficientnet_b0", width=0.25, depth=0.25, resolution=32, num_classes=4)
    folder = save_pretrained(model, tmp_path / "m")
    imgs = tmp_path / "imgs" / "sub"
    imgs.mkdir(parents=True)
    for i in range(5):
        Image.new("RGB", (40, 30), (i * 50, 0, 0)).save(imgs / f"{i}.png")
    (imgs / "notes.txt").write_text("not an image")
    (tmp_path / "imgs" / "broken.png").write_bytes(b"x")
    out = tmp_path / "p.csv"
    inputs = [str(tmp_path / "imgs"), str(tmp_path / "imgs/sub/[01].png")]  # a folder, a glob
    argv = ["predict", str(folder), *inputs, "--backend", "eager", "--top-k", "2",
            "--batch-size", "2", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    shown = [line for line in captured.out.splitlines() if not line.startswith("  ")]
    expected = [str(tmp_path / "imgs/sub" / f"{i}.png") for i in (0, 1, 2, 3, 4, 0, 1)]
    assert shown == expected  # the folder's images in order, then the glob's; notes.txt not
    assert "skipped" in captured.err and "broken.png" in captured.err
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 14 and rows[0]["rank"] == "1" and rows[1]["rank"] == "2"
    assert main(argv) == 2  # --out exists: refused, kept
    assert "already exists" in capsys.readouterr().err
    js = tmp_path / "p.json"
    assert main([*argv[:-1], str(js)]) == 0
    doc = json.loads(js.read_text())
    assert len(doc["predictions"]) == 7 and doc["errors"][0]["image"].endswith("broken.png")
    assert main(["predict", str(folder), str(tmp_path / "nothing-*.png")]) == 2
    assert "no image files there" in capsys.readouterr().err


# -- messages that name the real problem -----------------------------------------------------
def test_messages_name_the_actual_problem(tmp_path, capsys, monkeypatch):
    import os

    from effnet.rundir import ToolFolder

    def one_line(argv):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0, err
        return err

    bad = tmp_path / "s.json"
    bad.write_text('{"step": "0.1"}')
    assert "search step must be a number, got '0.1'" in one_line(
        ["search-coefficients", str(bad), "--out", str(tmp_path / "se")]
    )
    run = tmp_path / "r1"
    ToolFolder(run, "run").create()
    (run / "run.json").write_text("{}")
    err = one_line(["study", "--resume", "--out", str(run)])
    assert "it is effnet's run folder, not a study" in err and "pass --resume" not in err
    err = one_line(["study", "--quick", "--resume", "--out", str(run)])
    assert "is effnet's run folder, not a study" in err and "pass --resume" not in err
    err = one_line(["study", "--quick", "--force", "--out", str(run)])
    assert "is effnet's run folder, not a study folder" in err and "no .effnet-folder" not in err
    empty = tmp_path / "empty-model"
    empty.mkdir()
    img = tmp_path / "x.png"
    Image.new("RGB", (32, 32)).save(img)
    err = one_line(["predict", str(empty), str(img)])
    assert "not a model folder (no config.json)" in err and "unknown model" not in err
    model = create_model("efficientnet_b0", width=0.25, depth=0.25, resolution=32, num_classes=10,
                         in_chans=1)  # fmt: skip
    folder = save_pretrained(model, tmp_path / "m")
    err = one_line(["eval", str(folder)])
    assert "saved model, not a run folder" in err and "--data" in err
    if os.geteuid() != 0:  # root ignores permissions
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        err = one_line(["study", "--quick", "--out", str(ro / "s")])
        assert ".s." not in err and str(ro / "s") in err


def test_eval_of_a_model_on_fashion_mnist_needs_no_minival_for_the_test_split(tmp_path, capsys):
    model = create_model("efficientnet_b0", width=0.25, depth=0.25, resolution=32, num_classes=10,
                         in_chans=1)  # fmt: skip
    folder = save_pretrained(model, tmp_path / "m")
    assert main(["eval", str(folder), "--data", "fashion-mnist", "--subset", "50",
                 "--json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["images"] == 300  # the slice's test split
