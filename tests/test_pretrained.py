"""Published weights: the table of tags, the resolver, hub downloads through a cache the
tests build and a stand-in hub on 127.0.0.1, and timm's model API.

The weights are the repository's small timm fixture (EfficientNet-B0 at width 0.125, depth
1.1, made by timm in the reference env with its output on a fixed input), served as a hub
repository with a timm config.json whose ``model_args`` carry that width and depth in
timm's multiplier names (timm itself takes those only in its generator functions;
test_pretrained_reference.py has timm load a full-size repository built the same way).
"""

from __future__ import annotations

import io
import json
import logging
import pickle
from pathlib import Path

import pytest
import torch
from hubfake import HubServer, write_cache
from safetensors.torch import save as save_safetensors

import effnet
from effnet import create_model
from effnet.errors import EffnetError
from effnet.pretrained import all_tags, imagenet_classes, lookup
from effnet.pretrained.fetch import url_file
from effnet.resolve import resolve
from effnet.weights.foreign import timm_names
from effnet.weights.safe import read_safetensors

pytestmark = pytest.mark.usefixtures("one_thread")

FIXTURES = Path(__file__).parent / "fixtures" / "weights"
TINY = "timm_efficientnet_w0125_d11"
REPO = "timm/tiny_efficientnet.test_in1k"
CFG = dict(input_size=[3, 40, 40], interpolation="bilinear", crop_pct=0.9, mean=[0.5] * 3,
           std=[0.25] * 3, num_classes=10, tag="test_in1k")  # fmt: skip
CONFIG = dict(architecture="efficientnet_b0", num_classes=10, pretrained_cfg=CFG,
              model_args=dict(channel_multiplier=0.125, depth_multiplier=1.1),
              label_names=[f"class {i}" for i in range(10)])  # fmt: skip


def tiny_files(config: dict | None = None) -> dict[str, bytes]:
    return {
        "config.json": json.dumps(config or CONFIG).encode(),
        "model.safetensors": (FIXTURES / f"{TINY}.safetensors").read_bytes(),
    }


def tiny_io() -> tuple[torch.Tensor, torch.Tensor]:
    io_, _ = read_safetensors(FIXTURES / f"{TINY}.io.safetensors")
    return io_["input"], io_["output"]


def logits_diff(model: torch.nn.Module) -> float:
    x, y = tiny_io()
    with torch.no_grad():
        return (model.eval()(x) - y).abs().max().item()


@pytest.fixture
def online(monkeypatch):
    """A stand-in hub on 127.0.0.1 as HF_ENDPOINT, network allowed."""
    with HubServer() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.delenv("HF_HUB_OFFLINE")
        yield hub


# -- the table ---------------------------------------------------------------------------------
def test_every_family_has_its_published_tags_with_their_preprocessing():
    tags = all_tags()
    archs = {c.architecture for c in tags.values()}
    wanted = {f"tf_efficientnet_b{i}" for i in range(9)} | {"tf_efficientnet_l2"}
    wanted |= {f"efficientnet_b{i}" for i in range(8)}  # timm's or torchvision's
    wanted |= {f"tf_efficientnet_lite{i}" for i in range(5)} | {"efficientnet_lite0"}
    wanted |= {f"tf_efficientnetv2_{s}" for s in "sml"} | {f"efficientnetv2_{s}" for s in "sml"}
    assert wanted <= archs
    assert all(a in effnet.list_models() for a in archs)  # only what effnet builds
    b0 = lookup("efficientnet_b0")  # timm's default tag, its config, its published top-1
    assert (b0.name, b0.hf_hub_id, b0.input_size, b0.crop_pct, b0.interpolation) == (
        "efficientnet_b0.ra_in1k", "timm/efficientnet_b0.ra_in1k", (3, 224, 224), 0.875,
        "bicubic")  # fmt: skip
    assert b0.top1 == pytest.approx(77.694)
    assert lookup("tf_efficientnet_b0").tag == "ns_jft_in1k"
    assert lookup("tf_efficientnet_b7", "ns_jft_in1k").input_size == (3, 600, 600)
    tv = lookup("efficientnet_b0", "tv_in1k")  # torchvision's URL with its hash prefix
    assert tv.url.endswith("efficientnet_b0_rwightman-7f5810bc.pth") and tv.top1 == 77.692
    assert lookup("efficientnetv2_s").crop_pct == 1.0  # resize 384, crop 384
    assert len(imagenet_classes()) == 1000 and imagenet_classes()[0] == "tench"


def test_unknown_tag_lists_the_known_ones():
    with pytest.raises(
        EffnetError, match=r"unknown tag 'xx' for efficientnet_b0 \(known: .*ra_in1k"
    ):
        create_model("efficientnet_b0.xx", pretrained=True)


def test_scaled_model_has_no_published_weights():
    with pytest.raises(EffnetError, match=r"its own size only, not scaled by phi=1.5"):
        create_model("efficientnet_b0", pretrained=True, phi=1.5)


def test_a_tag_without_download_brings_its_preprocessing():
    m = create_model("tf_efficientnet_b3.ns_jft_in1k", num_classes=0)
    assert (m.arch.resolution, m.arch.crop_pct) == (300, 0.904)
    assert m.pretrained_cfg["hf_hub_id"] == "timm/tf_efficientnet_b3.ns_jft_in1k"


# -- a hub cache in the standard layout, offline ------------------------------------------------
def test_offline_cache_loads_a_hub_model_with_its_config_and_preprocessing(tmp_path):
    write_cache(tmp_path, REPO, tiny_files())
    model = create_model(f"hf-hub:{REPO}", pretrained=True, cache_dir=tmp_path)
    assert logits_diff(model) < 1e-4  # timm's own output on the fixture input
    assert model.num_classes == 10 and model.class_names[3] == "class 3"
    assert (model.arch.resolution, model.arch.interpolation, model.arch.crop_pct) == (
        40, "bilinear", 0.9)  # fmt: skip
    assert model.pretrained_cfg["mean"] == (0.5, 0.5, 0.5)


def test_a_name_and_tag_load_from_the_hub_cache(tmp_path, monkeypatch):
    """``efficientnet_b0.ra_in1k`` reads timm's repository from the standard cache
    (HF_HUB_CACHE, read when asked): full-size B0 weights in timm's names."""
    torch.manual_seed(0)
    src = create_model("efficientnet_b0").eval()
    weights = save_safetensors({k: v.contiguous() for k, v in timm_names(src.state_dict()).items()})
    config = {"architecture": "efficientnet_b0", "num_classes": 1000,
              "pretrained_cfg": {"tag": "ra_in1k", "input_size": [3, 224, 224]}}  # fmt: skip
    files = {"config.json": json.dumps(config).encode(), "model.safetensors": weights}
    write_cache(tmp_path, "timm/efficientnet_b0.ra_in1k", files)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    model = create_model("efficientnet_b0", pretrained=True).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (model(x) - src(x)).abs().max().item() < 1e-4
    assert model.class_names[0] == "tench" and model.pretrained_cfg["tag"] == "ra_in1k"


def test_offline_with_nothing_cached_names_the_repo_and_the_way_out(tmp_path):
    with pytest.raises(EffnetError) as e:
        create_model(f"hf-hub:{REPO}", pretrained=True, cache_dir=tmp_path)
    msg = str(e.value)
    assert REPO in msg and "HF_HUB_OFFLINE" in msg and "\n" not in msg


def test_config_naming_another_architecture_is_refused(tmp_path, monkeypatch):
    config = {"architecture": "efficientnet_b3", "num_classes": 1000}
    files = {"config.json": json.dumps(config).encode(), "model.safetensors": b"x"}
    write_cache(tmp_path, "timm/efficientnet_b0.ra_in1k", files)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(
        EffnetError, match=r"names architecture 'efficientnet_b3', not 'efficientnet_b0'"
    ):
        create_model("efficientnet_b0.ra_in1k", pretrained=True)


def test_a_config_naming_an_architecture_we_do_not_build(tmp_path):
    write_cache(tmp_path, REPO, tiny_files({"architecture": "vit_base_patch16_224"}))
    with pytest.raises(EffnetError, match=r"'vit_base_patch16_224', which effnet does not build"):
        create_model(f"hf-hub:{REPO}", cache_dir=tmp_path)


def test_other_num_classes_keeps_the_backbone_and_says_so(tmp_path, caplog):
    write_cache(tmp_path, REPO, tiny_files())
    full = create_model(f"hf-hub:{REPO}", pretrained=True, cache_dir=tmp_path).eval()
    with caplog.at_level(logging.WARNING, logger="effnet"):
        five = create_model(f"hf-hub:{REPO}", pretrained=True, cache_dir=tmp_path,
                            num_classes=5).eval()  # fmt: skip
    assert [r.getMessage() for r in caplog.records if "classifier is new" in r.getMessage()]
    x, _ = tiny_io()
    with torch.no_grad():
        assert torch.equal(full.forward_features(x), five.forward_features(x))
    assert five.num_classes == 5 and getattr(five, "class_names", None) is None


def test_grayscale_from_rgb_weights_sums_the_stem(tmp_path):
    write_cache(tmp_path, REPO, tiny_files())
    rgb = create_model(f"hf-hub:{REPO}", pretrained=True, cache_dir=tmp_path).eval()
    grey = create_model(f"hf-hub:{REPO}", pretrained=True, cache_dir=tmp_path, in_chans=1).eval()
    x, _ = tiny_io()
    g = x[:, :1]
    with torch.no_grad():
        assert (grey(g) - rgb(g.expand(-1, 3, -1, -1))).abs().max() < 1e-4


def test_a_pickle_only_repo_that_runs_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    buf = io.BytesIO()
    pickle.dump({"conv_stem.weight": Evil()}, buf)
    write_cache(tmp_path, REPO, {"config.json": json.dumps(CONFIG).encode(),
                                 "pytorch_model.bin": buf.getvalue()})  # fmt: skip
    with pytest.raises(EffnetError, match=r"refusing to load .*pytorch_model.bin"):
        create_model(f"hf-hub:{REPO}", pretrained=True, cache_dir=tmp_path)


# -- a stand-in hub on 127.0.0.1 ----------------------------------------------------------------
def test_download_revision_and_etag(tmp_path, online):
    files = tiny_files()
    online.repos[(REPO, "main")] = hubfake_repo(files, "a" * 40)
    other = dict(files, **{"config.json": json.dumps(dict(CONFIG, num_classes=10,
                 label_names=[f"v1 {i}" for i in range(10)])).encode()})  # fmt: skip
    online.repos[(REPO, "v1")] = hubfake_repo(other, "b" * 40)
    model = create_model(f"hf-hub:{REPO}", pretrained=True, cache_dir=tmp_path)
    assert logits_diff(model) < 1e-4
    snap = tmp_path / f"models--{REPO.replace('/', '--')}" / "snapshots" / ("a" * 40)
    assert (snap / "model.safetensors").is_file() and (snap / "config.json").is_file()
    assert len(online.gets("model.safetensors")) == 1
    create_model(f"hf-hub:{REPO}", pretrained=True, cache_dir=tmp_path)  # ETag unchanged
    assert len(online.gets("model.safetensors")) == 1  # a HEAD, no second download
    v1 = create_model(f"hf-hub:{REPO}@v1", pretrained=True, cache_dir=tmp_path)
    assert v1.class_names[0] == "v1 0"
    assert (tmp_path / f"models--{REPO.replace('/', '--')}" / "refs" / "v1").read_text() == "b" * 40


def test_a_broken_download_resumes_where_it_stopped(tmp_path, online, monkeypatch):
    """The connection breaks halfway through the weights: huggingface_hub asks again for
    the rest only (a Range request) and the file is whole. (It keeps what it received in
    whole chunks of 10 MB; the fixture is 0.7 MB, so the chunks here are 64 KiB.)"""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 1 << 16)
    files = tiny_files()
    repo = hubfake_repo(files, "a" * 40)
    repo.dropped.add("model.safetensors")
    online.repos[(REPO, "main")] = repo
    model = create_model(f"hf-hub:{REPO}", pretrained=True, cache_dir=tmp_path)
    assert logits_diff(model) < 1e-4
    ranges = [r for _, _, r in online.gets("model.safetensors")]
    assert ranges[0] is None and len(ranges) == 2 and ranges[1].startswith("bytes=")
    resumed_at = int(ranges[1][6:-1])
    assert 0 < resumed_at <= len(files["model.safetensors"]) // 2


def test_a_corrupt_download_is_never_loaded_nor_kept(tmp_path, online):
    files = tiny_files()
    repo = hubfake_repo(files, "a" * 40)
    repo.corrupt.add("model.safetensors")
    online.repos[(REPO, "main")] = repo
    with pytest.raises(EffnetError, match=r"is corrupt .*deleted from the cache"):
        create_model(f"hf-hub:{REPO}", pretrained=True, cache_dir=tmp_path)
    root = tmp_path / f"models--{REPO.replace('/', '--')}"
    assert not (root / "snapshots" / ("a" * 40) / "model.safetensors").exists()
    repo.corrupt.clear()  # the next try downloads it again, whole
    assert logits_diff(create_model(f"hf-hub:{REPO}", pretrained=True, cache_dir=tmp_path)) < 1e-4


def test_a_truncated_download_is_an_error_not_a_model(tmp_path, online):
    repo = hubfake_repo(tiny_files(), "a" * 40)
    repo.truncated.add("model.safetensors")
    online.repos[(REPO, "main")] = repo
    with pytest.raises(EffnetError, match=r"hub download of .*model.safetensors failed"):
        create_model(f"hf-hub:{REPO}", pretrained=True, cache_dir=tmp_path)
    snap = tmp_path / f"models--{REPO.replace('/', '--')}" / "snapshots" / ("a" * 40)
    assert not (snap / "model.safetensors").exists()


def test_unknown_repo_and_revision_are_one_line_errors(tmp_path, online):
    online.repos[(REPO, "main")] = hubfake_repo(tiny_files(), "a" * 40)
    with pytest.raises(EffnetError, match=r"hub repository timm/nothing not found"):
        create_model("hf-hub:timm/nothing", cache_dir=tmp_path)
    with pytest.raises(EffnetError, match=r"has no revision 'v9'"):
        create_model(f"hf-hub:{REPO}@v9", cache_dir=tmp_path)


def test_url_weights_land_in_torch_hubs_cache_with_their_hash_checked(tmp_path, online):
    import hashlib

    data = (FIXTURES / f"{TINY}.safetensors").read_bytes()
    name = f"tiny-{hashlib.sha256(data).hexdigest()[:8]}.safetensors"
    online.repos[("files/x", "main")] = hubfake_repo({name: data}, "c" * 40)
    url = f"{online.url}/files/x/resolve/main/{name}"
    got = url_file(url, tmp_path)
    assert got == tmp_path / name and got.read_bytes() == data
    online.repos[("files/x", "main")].corrupt.add(name)
    got.unlink()
    with pytest.raises(EffnetError, match=r"is corrupt"):
        url_file(url, tmp_path)
    assert not (tmp_path / name).exists()


def hubfake_repo(files: dict[str, bytes], commit: str):
    from hubfake import Repo

    return Repo(files=dict(files), commit=commit)


# -- the resolver: every kind of input ------------------------------------------------------------
def test_the_resolver_takes_every_kind_of_model_input(tmp_path):
    from effnet.weights import save_pretrained

    assert resolve("efficientnet_b0").weights is None
    arch_file = tmp_path / "a.json"
    arch_file.write_text(effnet.get_arch("efficientnet_b0", width=0.25).to_json())
    assert resolve(arch_file).arch.stem.out_channels == 8
    folder = save_pretrained(create_model("efficientnet_b0", width=0.25, num_classes=3),
                             tmp_path / "saved")  # fmt: skip
    r = resolve(folder)
    assert (r.weights, r.num_classes, r.source) == (folder, 3, "effnet")
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    for f in folder.iterdir():
        (run / "model" / f.name).write_bytes(f.read_bytes())
    assert resolve(run).weights == run / "model"  # a training run: its exported model
    assert resolve(folder / "config.json").weights == folder
    hub_folder = write_cache(tmp_path / "c", REPO, tiny_files())  # a timm hub folder
    assert resolve(hub_folder).arch.stem.out_channels == 8
    with pytest.raises(EffnetError, match=r"unknown model 'nope'"):
        resolve("nope")
    with pytest.raises(EffnetError, match=r"architecture file: it has no published weights"):
        resolve(arch_file, pretrained=True)


# -- timm's model API ---------------------------------------------------------------------------
# timm 1.0.31's answers (reference env): list_models("*lite*", pretrained=True) for the
# architectures effnet builds, and efficientnet_b0's feature_info for out_indices (2, 4)
TIMM_LITE_PRETRAINED = ["efficientnet_lite0.ra_in1k", "tf_efficientnet_lite0.in1k",
                        "tf_efficientnet_lite1.in1k", "tf_efficientnet_lite2.in1k",
                        "tf_efficientnet_lite3.in1k", "tf_efficientnet_lite4.in1k"]  # fmt: skip
TIMM_B0_FEATURES = ([40, 320], [8, 32], ["blocks.2", "blocks.6"])


def test_list_models_filters_as_timm_does():
    assert effnet.list_models("*lite*", pretrained=True) == TIMM_LITE_PRETRAINED
    assert "tf_efficientnet_lite0" in effnet.list_models("*lite*")
    assert "efficientnet_b0" not in effnet.list_models("*lite*")
    assert effnet.list_models(["efficientnet_b0", "mobilenet_v2"]) == ["efficientnet_b0",
                                                                       "mobilenet_v2"]  # fmt: skip


def test_features_only_out_indices_and_feature_info_as_timm():
    m = create_model("efficientnet_b0", features_only=True, out_indices=(2, 4))
    info = m.feature_info
    assert (info.channels(), info.reduction(), info.module_name()) == TIMM_B0_FEATURES
    out = m(torch.randn(1, 3, 64, 64))
    assert [t.shape[1] for t in out] == [40, 320] and [t.shape[-1] for t in out] == [8, 2]
    with pytest.raises(EffnetError, match=r"out_indices \[7\]: efficientnet_b0 has 5 feature"):
        create_model("efficientnet_b0", features_only=True, out_indices=(7,))


def test_classifier_and_pretrained_cfg_accessors():
    m = create_model("efficientnet_b0", num_classes=7)
    assert m.get_classifier() is m.classifier and m.get_classifier().out_features == 7
    assert m.default_cfg is m.pretrained_cfg
    assert m.pretrained_cfg["input_size"] == (3, 224, 224) and m.pretrained_cfg["num_classes"] == 7
    m.reset_classifier(3)
    assert m.pretrained_cfg["num_classes"] == 3


# -- effnet validate --------------------------------------------------------------------------
def test_validate_counts_top1_against_the_folder_labels(tmp_path, capsys, monkeypatch):
    """Each image filed under the class the hub model predicts for it: top-1 100%; one
    image moved to another class: top-1 drops by exactly that image."""
    import numpy as np
    from PIL import Image

    from effnet.cli import main
    from effnet.images import Preprocess, load_batch

    cache = tmp_path / "cache"
    write_cache(cache, REPO, tiny_files())
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    model = create_model(f"hf-hub:{REPO}", pretrained=True).eval()
    rng = np.random.default_rng(0)
    raw = tmp_path / "raw"
    raw.mkdir()
    paths = []
    for i in range(12):
        w, h = int(rng.integers(40, 90)), int(rng.integers(40, 90))
        p = raw / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    with torch.no_grad():
        pred = model(load_batch(paths, Preprocess.of(model)).tensor).argmax(1).tolist()
    root = tmp_path / "val"
    for c in range(10):
        (root / f"c{c}").mkdir(parents=True)
    for p, c in zip(paths, pred):
        p.rename(root / f"c{c}" / p.name)
    out = tmp_path / "result.json"
    assert main(["validate", f"hf-hub:{REPO}", str(root), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert (result["images"], result["top1"], result["top5"]) == (12, 100.0, 100.0)
    assert result["labels"] == "sorted" and result["preprocessing"]["resize_to"] == 44
    assert "top-1 100.000%" in capsys.readouterr().out
    moved = next((root / f"c{pred[0]}").iterdir())
    moved.rename(root / f"c{(pred[0] + 1) % 10}" / moved.name)
    assert main(["validate", f"hf-hub:{REPO}", str(root), "--json", str(out), "--force"]) == 0
    assert json.loads(out.read_text())["top1"] == pytest.approx(100 * 11 / 12)


def test_validate_labels_wordnet_folders_by_their_imagenet_index(tmp_path):
    import numpy as np
    from PIL import Image

    from effnet.validate import validate

    model = create_model("efficientnet_b0", width=0.25, depth=0.25, resolution=32)
    for wnid in ("n01443537", "n01530575"):  # ImageNet classes 1 and 10
        (tmp_path / wnid).mkdir()
        Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / wnid / "a.png")
    result = validate(model, tmp_path)
    assert result["labels"] == "synsets"
    assert sorted(r["label"] for r in result["predictions"]) == [1, 10]
    with pytest.raises(EffnetError, match=r"2 class folders for a model of 7 classes"):
        validate(create_model("efficientnet_b0", width=0.25, depth=0.25, num_classes=7), tmp_path)


def test_push_to_hub_uploads_a_folder_timm_and_we_load(tmp_path, monkeypatch):
    """push_to_hub creates the repository and uploads what save_pretrained writes; the
    upload is recorded by a stand-in for huggingface_hub's HfApi (no hub here), and the
    uploaded folder, served back as a hub repository, loads with the same outputs."""
    import huggingface_hub

    calls = []

    class Api:
        def __init__(self, endpoint=None, token=None):
            calls.append(("init", endpoint, token))

        def create_repo(self, repo_id, private=False, exist_ok=False):
            calls.append(("create", repo_id, private, exist_ok))

        def upload_folder(self, folder_path, repo_id, revision=None, commit_message=""):
            files = {p.name: p.read_bytes() for p in Path(folder_path).iterdir()}
            calls.append(("upload", repo_id, sorted(files), commit_message))
            write_cache(tmp_path, repo_id, files)
            return type("Info", (), {"commit_url": f"https://hub/{repo_id}/commit/1"})()

    monkeypatch.setattr(huggingface_hub, "HfApi", Api)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    model = create_model("efficientnet_b0", width=0.25, depth=0.25, num_classes=3).eval()
    url = effnet.push_to_hub(model, "me/tiny", class_names=["a", "b", "c"], private=True)
    assert url == "https://hub/me/tiny/commit/1"
    assert calls[0] == ("init", "http://127.0.0.1:9", None)
    assert calls[1] == ("create", "me/tiny", True, True)
    assert calls[2][:3] == ("upload", "me/tiny", ["config.json", "model.safetensors"])
    back = create_model("hf-hub:me/tiny", pretrained=True, cache_dir=tmp_path).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(back(x), model(x))
    assert back.class_names == ["a", "b", "c"]


def test_review_cases_of_the_resolver_and_the_hub(tmp_path):
    """A model saved without a classifier comes back without one; a tag with a local file
    keeps the file's own classifier; bad config types are one-line errors; out_indices
    must be given shallow to deep."""
    from effnet.weights import save_pretrained

    bare = save_pretrained(create_model("efficientnet_b0", width=0.25, depth=0.25,
                                        num_classes=0), tmp_path / "bare")  # fmt: skip
    assert create_model(bare).num_classes == 0
    ten = create_model("efficientnet_b0", num_classes=10).eval()
    path = tmp_path / "ten.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in ten.state_dict().items()}, path)
    back = create_model("efficientnet_b0.ra_in1k", pretrained=path, num_classes=10).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(back(x), ten(x))  # its classifier loaded, not a new one
    cases = [
        (dict(CONFIG, model_args=[1]), "model_args must be an object"),
        (dict(CONFIG, model_args={"bn_eps": "x"}), "bn_eps must be a number"),
        (dict(CONFIG, pretrained_cfg=[1]), "pretrained_cfg must be an object"),
        (dict(CONFIG, num_classes="ten"), "'num_classes' is not a number"),
    ]
    for bad, message in cases:
        cache = tmp_path / f"c{len(message)}"
        write_cache(cache, REPO, tiny_files(bad))
        with pytest.raises(EffnetError, match=message):
            create_model(f"hf-hub:{REPO}", cache_dir=cache)
    with pytest.raises(EffnetError, match=r"give each level once, shallow to deep"):
        create_model("efficientnet_b0", features_only=True, out_indices=(3, 1))
