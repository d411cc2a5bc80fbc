"""End-to-end runs on real Fashion-MNIST images (the shipped slice): learning, the run folder,
eval, NaN, bad images."""

import json

import pytest
import torch
from PIL import Image

from effnet.cli import main
from effnet.data import DataSpec
from effnet.errors import EffnetError
from effnet.train import RECIPES, evaluate_run, train
from effnet.train import loop as loop_module
from effnet.train.checkpoint import load_latest

pytestmark = pytest.mark.slow  # trainings of 60 steps

TINY = dict(width=0.25, depth=0.34, resolution=28)
# no augmentation or regularisation: 60 steps must show learning, on 2 shared CPU cores
QUICK = RECIPES["cpu"].replace(
    batch_size=64, lr=0.016, warmup_epochs=0.05, drop_path=0.0, dropout=0.0, random_erasing=0.0,
    hflip=False, crop_padding=0.0, label_smoothing=0.0, bn_momentum=0.1, log_every=10,
    checkpoint_every=0, eval_batch_size=500,
)  # fmt: skip


@pytest.fixture(scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, one_thread):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    data = DataSpec(minival=200, workers=0)  # 800 images: 12 steps an epoch, 60 in all
    return train(
        "efficientnet_b0", data, QUICK.replace(epochs=5), out, model_overrides=TINY, progress=False
    )


def test_tiny_run_learns_far_above_chance(tiny_run):
    m = tiny_run.metrics
    assert m["steps"] == 60 and m["epochs"] == 5.0
    assert m["minival_top1"] > 40 and m["test_top1"] > 40  # chance is 10%
    assert m["test_top5"] > 85
    assert m["resolution"] == 28 and m["params"] > 0 and m["macs"] > 0


def test_run_folder_layout(tiny_run):
    run = tiny_run.run_dir
    for name in (
        "run.json",
        "metrics.jsonl",
        "summary.json",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
        "model/config.json",
        "model/model.safetensors",
    ):
        assert (run / name).is_file(), name
    config = json.loads((run / "run.json").read_text())
    assert config["recipe"]["batch_size"] == 64 and config["data"]["minival"] == 200
    assert config["model"]["mean"] == [0.286] and config["in_chans"] == 1
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "step"] == list(range(10, 61, 10))
    epoch = [r for r in records if r["kind"] == "epoch"]
    assert len(epoch) == 5 and "ema_minival_top1" in epoch[-1]
    assert json.loads((run / "summary.json").read_text()) == tiny_run.metrics


def test_evaluate_run_and_exported_model_agree(tiny_run):
    from effnet.weights import from_pretrained

    r = evaluate_run(tiny_run.run_dir)
    assert r["top1"] == pytest.approx(tiny_run.metrics["test_top1"])
    assert r["images"] == 300 and sum(map(sum, r["confusion"])) == 300
    exported = evaluate_run(
        from_pretrained(tiny_run.run_dir / "model"), DataSpec(minival=200, workers=0)
    )
    assert exported["top1"] == pytest.approx(r["top1"])


def test_eval_cli_prints_and_writes_confusion_png(tiny_run, capsys):
    assert main(["eval", str(tiny_run.run_dir), "--split", "minival"]) == 0
    out = capsys.readouterr().out
    assert f"top-1 {tiny_run.metrics['minival_top1']:.2f}%" in out
    png = tiny_run.run_dir / "confusion_minival.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_flip_tta_averages_the_logits_of_both_mirror_images(tiny_run, capsys):
    from effnet.train.evaluation import FlipAverage, load_run_model

    net, _ = load_run_model(tiny_run.run_dir)
    x = torch.randn(4, 1, 32, 32)
    with torch.no_grad():
        both = (net(x) + net(x.flip(-1))) / 2
        torch.testing.assert_close(FlipAverage(net).eval()(x), both)
    plain = evaluate_run(tiny_run.run_dir, split="minival")
    flipped = evaluate_run(tiny_run.run_dir, split="minival", tta="flip")
    assert flipped["tta"] == "flip" and flipped["images"] == plain["images"] == 200
    assert main(["eval", str(tiny_run.run_dir), "--split", "minival", "--tta", "flip"]) == 0
    assert f"flip TTA): top-1 {flipped['top1']:.2f}%" in capsys.readouterr().out
    with pytest.raises(EffnetError, match="tta must be one of"):
        evaluate_run(tiny_run.run_dir, tta="rotate")


def test_existing_run_folder_is_not_overwritten(tiny_run, capsys):
    code = main(["train", "efficientnet_b0", "--out", str(tiny_run.run_dir), "--no-progress"])
    assert code == 2
    assert "already exists (pass --resume" in capsys.readouterr().err


def test_progressive_resizing_trains_small_first_and_ends_at_full_size(tmp_path, one_thread):
    data = DataSpec(subset=400, minival=100, workers=0)
    recipe = QUICK.replace(epochs=4, log_every=1, resize_stages=2, resize_start=0.5)
    out = tmp_path / "run"
    result = train("efficientnet_b0", data, recipe, out, model_overrides=TINY, progress=False)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    sides = [r["side"] for r in records if r["kind"] == "step"]
    n = result.metrics["steps"]  # 4 epochs: the first half of the steps at half the side
    assert n % 4 == 0 and sides == [14] * (n // 2) + [28] * (n // 2)
    assert [r["side"] for r in records if r["kind"] == "epoch"] == [14, 14, 28, 28]
    assert result.metrics["resolution"] == 28 and result.metrics["test_top1"] > 10


def test_nan_loss_stops_cleanly_keeping_last_good_checkpoint(tmp_path, monkeypatch, one_thread):
    real = loop_module.make_loss
    calls = {"n": 0}

    def poisoned(recipe):
        loss = real(recipe)

        def f(logits, target):
            calls["n"] += 1
            value = loss(logits, target)
            return value * float("nan") if calls["n"] == 3 else value

        return f

    monkeypatch.setattr(loop_module, "make_loss", poisoned)
    data = DataSpec(subset=256, minival=100, workers=0)
    recipe = QUICK.replace(epochs=1, checkpoint_every=2)
    with pytest.raises(EffnetError, match=r"loss is nan at step 3 \(epoch 1\)"):
        train(
            "efficientnet_b0", data, recipe, tmp_path / "run", model_overrides=TINY, progress=False
        )
    ck = load_latest(tmp_path / "run" / "checkpoints")
    assert ck["step"] == 2
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())


def test_corrupt_images_are_skipped_and_listed(tmp_path, one_thread, capsys):
    root = tmp_path / "tree"
    for split, n in (("train", 24), ("val", 6)):
        for c, shade in (("dark", 40), ("light", 220)):
            folder = root / split / c
            folder.mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (20, 20), (shade, shade, shade)).save(folder / f"{i}.png")
    (root / "train" / "dark" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (root / "val" / "light" / "empty.jpg").write_bytes(b"")
    data = DataSpec(str(root), minival=8, workers=0, image_size=32)
    recipe = QUICK.replace(epochs=2, batch_size=8)
    result = train(
        "efficientnet_b0",
        data,
        recipe,
        tmp_path / "run",
        model_overrides=dict(TINY, resolution=32),
        progress=False,
    )
    listed = (tmp_path / "run" / "bad_files.txt").read_text().split()
    assert sorted(p.rsplit("/", 1)[-1] for p in listed) == ["broken.png", "empty.jpg"]
    assert result.metrics["bad_files"] == 2
    err = capsys.readouterr().err  # said on the console as soon as an epoch finds them
    assert "effnet: warning: 2 unreadable image(s) skipped; listed in" in err
