"""Fine-tuning from init weights (effnet.train.finetune): new head, frozen backbone, lower
backbone learning rate, frozen batch norm, exact resume across the unfreeze, preprocessing."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from effnet.cli import main
from effnet.data import DataSpec
from effnet.errors import EffnetError
from effnet.model import build
from effnet.registry import get_arch
from effnet.train import RECIPES, train
from effnet.train.finetune import Init, as_init, is_head, load_init
from effnet.train.optim import make_optimizer, set_lr
from effnet.weights import from_pretrained, save_pretrained

pytestmark = pytest.mark.slow  # fine-tuning runs

TINY = dict(width=0.25, depth=0.34, resolution=32)
RECIPE = RECIPES["cpu"].replace(
    epochs=2, batch_size=8, warmup_epochs=0, log_every=1, checkpoint_every=0, ema=False,
    deterministic=True, channels_last=False, drop_path=0.0, lr=0.05,
)  # fmt: skip
PREPROCESSING = dict(mean=(0.3, 0.4, 0.5), std=(0.2, 0.25, 0.3), interpolation="bilinear")


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_tree(root, classes=3, per_split=(8, 2, 2)):
    """train/val/test folders of 20 px PNGs: each class its own colour, plus noise."""
    rng = np.random.default_rng(0)
    for c in range(classes):
        colour = np.array([255 * (c == k % 3) for k in range(3)], dtype=float)
        for split, n in zip(("train", "val", "test"), per_split, strict=True):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                img = np.clip(colour * 0.7 + rng.normal(40, 30, (20, 20, 3)), 0, 255)
                Image.fromarray(img.astype(np.uint8)).save(folder / f"{i}.png")
    return root


def make_init(folder, in_chans=3, **overrides):
    """A saved 4-class model with its own preprocessing and non-trivial BN statistics."""
    arch = get_arch("efficientnet_b0", **{**TINY, **overrides}).replace(**PREPROCESSING)
    torch.manual_seed(1)
    net = build(arch, num_classes=4, in_chans=in_chans)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    save_pretrained(net, folder, class_names=list("abcd"))
    return folder, {k: v.clone() for k, v in net.state_dict().items()}


def backbone(state):
    return {k: v for k, v in state.items() if not is_head(k)}


def same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def ckpt(path):
    return torch.load(path, weights_only=True)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft")
    return root, make_tree(root / "data"), make_init(root / "init")


def test_load_init_replaces_head_and_adapts_a_grey_stem(tmp_path):
    folder, init = make_init(tmp_path / "grey", in_chans=1)
    arch = get_arch("efficientnet_b0", **TINY)
    net = build(arch, num_classes=3, in_chans=3)
    loaded = load_init(net, Init(str(folder)))
    assert loaded["source"] == "effnet" and net.classifier.out_features == 3
    got = net.state_dict()
    assert torch.equal(got["conv_stem.weight"], init["conv_stem.weight"].repeat(1, 3, 1, 1) / 3)
    assert same({k: v for k, v in backbone(init).items() if k != "conv_stem.weight"}, got)


def test_freeze_then_unfreeze_resumes_bit_identical(setup, tmp_path):
    root, data, (init_dir, init) = setup
    spec = DataSpec(str(data), image_size=20, workers=0)
    a, b = tmp_path / "a", tmp_path / "b"
    recipe = RECIPE.replace(freeze_epochs=1, backbone_lr_mult=0.5)
    train(None, spec, recipe, a, init=init_dir, progress=False)  # 3 steps an epoch
    at_unfreeze = ckpt(a / "checkpoints" / "previous.pt")  # end of epoch 1: step 3
    assert at_unfreeze["step"] == 3
    assert same(backbone(init), at_unfreeze["model"])  # weights and BN statistics
    assert not torch.equal(at_unfreeze["model"]["classifier.weight"], torch.zeros(3, 32))
    end = ckpt(a / "checkpoints" / "last.pt")
    changed = [k for k, v in backbone(init).items() if not torch.equal(v, end["model"][k])]
    assert "conv_stem.weight" in changed and "blocks.0.0.bn2.running_mean" in changed
    shutil.copytree(a, b)  # b: killed at the unfreeze, resumes from there
    shutil.copy(b / "checkpoints" / "previous.pt", b / "checkpoints" / "last.pt")
    train(None, None, None, b, resume=True, progress=False)

    def log(run):
        lines = (run / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(x).items() if k != "time_s"} for x in lines]

    c = tmp_path / "c"  # c: killed before its first checkpoint: starts over from the init
    shutil.copytree(a, c)
    shutil.rmtree(c / "checkpoints")
    (c / "metrics.jsonl").write_text("")
    train(None, None, None, c, resume=True, progress=False)
    assert log(a) == log(b) == log(c) and len(log(a)) == 8  # 6 step and 2 epoch records
    end_b, end_c = ckpt(b / "checkpoints" / "last.pt"), ckpt(c / "checkpoints" / "last.pt")
    assert same(end["model"], end_b["model"]) and same(end["model"], end_c["model"])
    assert end["optimizer"]["param_groups"] == end_b["optimizer"]["param_groups"]
    lr = {g["lr_mult"]: g["lr"] for g in end["optimizer"]["param_groups"]}
    assert lr[0.5] == pytest.approx(0.5 * lr[1.0]) and lr[1.0] > 0
    config = json.loads((a / "run.json").read_text())
    assert config["init"] == {"path": str(init_dir.resolve()), "source": "effnet"}
    assert config["recipe"]["freeze_epochs"] == 1
    saved = json.loads((a / "model" / "config.json").read_text())["preprocessing"]
    assert {k: saved[k] for k in ("mean", "std", "interpolation", "resolution")} == {
        "mean": [0.3, 0.4, 0.5], "std": [0.2, 0.25, 0.3], "interpolation": "bilinear",
        "resolution": 32,
    }  # fmt: skip
    model = from_pretrained(a / "model")
    assert model.num_classes == 3 and model.class_names == ["class0", "class1", "class2"]
    assert as_init(a).path == str((a / "model").resolve())  # a run folder means its model/


def test_freeze_bn_keeps_statistics_and_affine(setup, tmp_path):
    root, data, (init_dir, init) = setup
    spec = DataSpec(str(data), image_size=20, workers=0)
    train(None, spec, RECIPE.replace(epochs=1, freeze_bn=True), tmp_path / "r",
          init=init_dir, progress=False)  # fmt: skip
    end = ckpt(tmp_path / "r" / "checkpoints" / "last.pt")["model"]
    bn = {k: v for k, v in init.items() if ".bn" in k or k.startswith("bn")}
    assert len(bn) > 20 and same(bn, end)
    assert not torch.equal(init["conv_stem.weight"], end["conv_stem.weight"])


def test_backbone_learning_rate_is_a_multiple_of_the_heads():
    net = build(get_arch("efficientnet_b0", **TINY), num_classes=3)
    optimizer = make_optimizer(net, RECIPE.replace(backbone_lr_mult=0.1), 1.0)
    set_lr(optimizer, 0.2)
    lr = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert len(lr) == len(list(net.parameters()))
    for name, p in net.named_parameters():
        assert lr[id(p)] == pytest.approx(0.2 if is_head(name) else 0.02), name


def test_mismatched_init_is_one_line_naming_the_tensor(setup, tmp_path, capsys):
    root, data, (init_dir, _) = setup
    args = ["train", "efficientnet_b0", "--width", "0.5", "--init", str(init_dir), "--data",
            str(data), "--out", str(tmp_path / "r"), "--workers", "0", "--no-progress"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'conv_stem.weight'" in err and str(init_dir) in err
    with pytest.raises(EffnetError, match="init weights not found: .*missing"):
        train(None, DataSpec(str(data)), RECIPE, tmp_path / "m", init=tmp_path / "missing")
    with pytest.raises(EffnetError, match="needs init weights"):
        train("efficientnet_b0", DataSpec(str(data)), RECIPE.replace(freeze_bn=True),
              tmp_path / "s", model_overrides=TINY, progress=False)  # fmt: skip
    assert main(["train", "--resume", str(tmp_path / "r"), "--freeze-epochs", "1"]) == 2
    assert "--freeze-epochs cannot be given with --resume" in capsys.readouterr().err


FIXTURES = Path(__file__).parent / "fixtures" / "weights"


@pytest.mark.parametrize(
    "name", ["timm_efficientnet_w0125_d11", "torchvision_efficientnet_w0125_d11"]
)
def test_foreign_checkpoint_fine_tunes_from_the_cli(setup, tmp_path, capsys, name):
    root, data, _ = setup
    weights = FIXTURES / f"{name}.safetensors"
    common = ["--data", str(data), "--decode-size", "20", "--workers", "0", "--recipe", "cpu",
              "--epochs", "1", "--batch-size", "8", "--no-progress",
              "--freeze-epochs", "0.5"]  # fmt: skip
    assert main(["train", "--init", str(weights), *common, "--out", str(tmp_path / "x")]) == 2
    assert "do not say their architecture: name the model" in capsys.readouterr().err
    args = ["train", "efficientnet_b0", "--width", "0.125", "--depth", "1.1", "--image-size",
            "32", "--init", str(weights), *common, "--out", str(tmp_path / "r")]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    config = json.loads((tmp_path / "r" / "run.json").read_text())
    assert config["init"]["source"] == name.split("_")[0]
    assert config["init_loaded"]["eps"] == 1e-5 and config["num_classes"] == 3
    model = from_pretrained(tmp_path / "r" / "model")
    assert model.arch.resolution == 32 and model.arch.mean == (0.485, 0.456, 0.406)


def test_fine_tuning_from_a_hub_repository(setup, tmp_path, monkeypatch):
    """``--init hf-hub:ORG/REPO`` (here from a hub cache in the standard layout): the
    backbone comes from the repository, the head is new for the data's 3 classes, the
    preprocessing is the repository's, and the run records where the weights came from;
    the run resumes after the cache is gone (the init is fetched again, here from a copy)."""
    import shutil

    from hubfake import write_cache
    from test_pretrained import REPO, tiny_files

    _, data, _ = setup
    cache = tmp_path / "cache"
    write_cache(cache, REPO, tiny_files())
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    spec = DataSpec(str(data), image_size=20, workers=0)
    run = tmp_path / "run"
    result = train(None, spec, RECIPE.replace(epochs=1), run, init=f"hf-hub:{REPO}",
                   progress=False)  # fmt: skip
    config = json.loads((run / "run.json").read_text())
    assert config["init"]["name"] == f"hf-hub:{REPO}" and config["init"]["source"] == "timm"
    saved = json.loads((run / "model" / "config.json").read_text())
    assert saved["num_classes"] == 3 and saved["preprocessing"]["interpolation"] == "bilinear"
    assert saved["effnet_architecture"]["stem"]["out_channels"] == 8  # width 0.125 of 32
    assert config["init_loaded"]["tensors"] > 100 and result.run_dir == run
    shutil.rmtree(cache)  # the cache is gone; another holds the repository
    write_cache(tmp_path / "cache2", REPO, tiny_files())
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache2"))
    shutil.rmtree(run / "checkpoints")  # killed before its first checkpoint: from the init
    (run / "metrics.jsonl").write_text("")
    train(None, None, None, run, resume=True, progress=False)
    assert (run / "model" / "model.safetensors").is_file()
