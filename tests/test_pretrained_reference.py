"""The hub path against the real timm (reference environment only, skipped elsewhere).

timm itself loads the hub cache these tests build, holding a full-size B0 in timm's names
(``timm_names``) with a timm config.json (so the layout, the config and the names are
the real ones), and must give our output; its ``list_models`` and ``feature_info`` must
give the answers test_pretrained.py holds.
``pytest -m reference tests/test_pretrained_reference.py`` (about a minute).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from hubfake import write_cache
from test_pretrained import TIMM_B0_FEATURES, TIMM_LITE_PRETRAINED

REFERENCE = Path(os.environ.get("EFFNET_REFERENCE_ENV", "/opt/effnet-reference"))
FIXTURES = Path(__file__).parent / "fixtures" / "weights"

pytestmark = [
    pytest.mark.reference,
    pytest.mark.slow,
    pytest.mark.skipif(
        not (REFERENCE / "bin" / "python").exists(), reason="no reference environment"
    ),
]


@pytest.fixture(autouse=True)
def only_when_asked(request):
    if "reference" not in (request.config.option.markexpr or ""):
        pytest.skip("the reference env's timm: run with -m reference")


def timm_says(code: str, env: dict[str, str] | None = None) -> object:
    out = subprocess.run([str(REFERENCE / "bin" / "python"), "-c", code], capture_output=True,
                         text=True, check=True, env={**os.environ, **(env or {})})  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_timm_loads_the_cache_the_tests_build(tmp_path):
    import torch
    from safetensors.torch import save, save_file

    from effnet import create_model
    from effnet.weights.foreign import set_eps, timm_names

    torch.manual_seed(0)
    ours = create_model("efficientnet_b0").eval()
    set_eps(ours, 1e-5)  # timm's efficientnet_b0 convention (PyTorch's batch norm)
    for m in ours.modules():  # statistics away from the identity
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    weights = save({k: v.contiguous() for k, v in timm_names(ours.state_dict()).items()})
    cfg = {"tag": "test_in1k", "input_size": [3, 224, 224], "crop_pct": 0.9,
           "interpolation": "bilinear", "mean": [0.5] * 3, "std": [0.25] * 3}  # fmt: skip
    config = {"architecture": "efficientnet_b0", "num_classes": 1000, "pretrained_cfg": cfg}
    repo = "timm/efficientnet_b0.test_in1k"
    write_cache(tmp_path, repo, {"config.json": json.dumps(config).encode(),
                                 "model.safetensors": weights})  # fmt: skip
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        y = ours(x)
    save_file({"input": x, "output": y}, tmp_path / "io.safetensors")
    code = f"""
import json, timm, torch
from safetensors.torch import load_file
io = load_file({str(tmp_path / "io.safetensors")!r})
m = timm.create_model("hf-hub:{repo}", pretrained=True).eval()
with torch.no_grad():
    d = (m(io["input"]) - io["output"]).abs().max().item()
print(json.dumps([d, m.pretrained_cfg["crop_pct"], m.pretrained_cfg["interpolation"]]))
"""
    diff, crop, interp = timm_says(code, {"HF_HUB_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1"})
    assert diff < 1e-4 and (crop, interp) == (0.9, "bilinear")
    back = create_model(f"hf-hub:{repo}", pretrained=True, cache_dir=tmp_path).eval()
    with torch.no_grad():
        assert (back(x) - y).abs().max().item() < 1e-4


def test_timm_gives_the_answers_the_api_tests_hold():
    import effnet

    code = """
import json, timm
m = timm.create_model("efficientnet_b0", features_only=True, out_indices=(2, 4))
lite = timm.list_models("*lite*", pretrained=True)
print(json.dumps([lite, [m.feature_info.channels(), m.feature_info.reduction(),
                         m.feature_info.module_name()]]))
"""
    lite, features = timm_says(code)
    ours = set(effnet.list_models())
    assert [n for n in lite if n.split(".")[0] in ours] == TIMM_LITE_PRETRAINED
    assert tuple(features) == TIMM_B0_FEATURES


def test_our_eval_crop_is_torchvisions_pixel_for_pixel():
    """images.center_crop + to_tensor against torchvision's Resize + CenterCrop + ToTensor
    + Normalize (timm's eval transform) on odd sizes and three configs: identical."""
    tool = Path(__file__).parent.parent / "tools" / "eval_transform_vs_torchvision.py"
    src = str(Path(__file__).parent.parent / "src")
    worst = timm_says(f"import runpy, sys; sys.path.insert(0, {src!r}); "
                      f"runpy.run_path({str(tool)!r}, run_name='__main__')")  # fmt: skip
    assert worst == 0


def _random_stats(model) -> None:
    import torch

    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


@pytest.mark.parametrize("name", ["efficientnet_b0", "tf_efficientnet_lite0"])
def test_timm_loads_what_save_pretrained_writes(tmp_path, name):
    """Our folder is a timm hub model: timm's create_model("hf-hub:...") rebuilds it from
    config.json (name, model_args bn_eps, pretrained_cfg) and gives our logits."""
    import torch
    from safetensors.torch import save_file

    from effnet import create_model, save_pretrained

    torch.manual_seed(0)
    ours = create_model(name, num_classes=10).eval()
    _random_stats(ours)
    folder = save_pretrained(ours, tmp_path / "saved", class_names=[f"c{i}" for i in range(10)])
    files = {f.name: f.read_bytes() for f in folder.iterdir()}
    repo = f"timm/{name}.effnet_saved"
    write_cache(tmp_path / "cache", repo, files)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        save_file({"input": x, "output": ours(x)}, tmp_path / "io.safetensors")
    code = f"""
import json, timm, torch
from safetensors.torch import load_file
io = load_file({str(tmp_path / "io.safetensors")!r})
m = timm.create_model("hf-hub:{repo}", pretrained=True).eval()
with torch.no_grad():
    print(json.dumps((m(io["input"]) - io["output"]).abs().max().item()))
"""
    env = {"HF_HUB_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    assert timm_says(code, env) < 1e-4


def test_we_load_what_timm_saves_for_the_hub(tmp_path):
    """timm's save_for_hf folder (config.json + model.safetensors) is a model folder here."""
    import torch
    from safetensors.torch import load_file

    from effnet import create_model

    code = f"""
import json, timm, torch
from safetensors.torch import save_file
from timm.models import save_for_hf
torch.manual_seed(0)
m = timm.create_model("tf_efficientnet_b0", num_classes=7).eval()
g = torch.Generator().manual_seed(1)
for b in m.modules():
    if isinstance(b, torch.nn.BatchNorm2d):
        b.running_mean.copy_(torch.randn(b.num_features, generator=g) * 0.1)
        b.running_var.copy_(torch.rand(b.num_features, generator=g) + 0.5)
save_for_hf(m, {str(tmp_path / "timm_saved")!r})
x = torch.randn(2, 3, 64, 64)
with torch.no_grad():
    save_file({{"input": x, "output": m(x)}}, {str(tmp_path / "io.safetensors")!r})
print(json.dumps(0))
"""
    timm_says(code)
    io_ = load_file(tmp_path / "io.safetensors")
    ours = create_model(tmp_path / "timm_saved").eval()
    assert ours.num_classes == 7 and ours.arch.padding.value == "same"
    with torch.no_grad():
        assert (ours(io_["input"]) - io_["output"]).abs().max().item() < 1e-4
