"""Every full-size timm and torchvision EfficientNet maps key for key onto ours.

manifests.json holds the state-dict names and shapes of the real models (timm 1.0.31,
torchvision 0.28, built on the meta device by tools/make_weight_fixtures.py). Ours are
built on the meta device too, so even L2 costs no memory; loading meta tensors runs the
whole key mapping, shape check and epsilon convention without any arithmetic.
"""

import json
from pathlib import Path

import pytest
import torch

from effnet import EffnetError, Padding, create_model
from effnet.weights import detect_source, load_foreign, map_timm, map_torchvision

MANIFESTS = json.loads((Path(__file__).parent / "fixtures/weights/manifests.json").read_text())
CASES = [(src, name) for src in ("timm", "torchvision") for name in MANIFESTS[src]]


pytestmark = pytest.mark.usefixtures("one_thread")


def meta_model(name: str) -> torch.nn.Module:
    with torch.device("meta"):
        return create_model(name)


def meta_state_dict(manifest: dict) -> dict[str, torch.Tensor]:
    return {k: torch.empty(shape, device="meta") for k, shape in manifest["keys"]}


def test_manifests_cover_every_released_variant():
    assert sorted(MANIFESTS["timm"]) == sorted(
        [f"efficientnet_b{i}" for i in range(9)]
        + [f"tf_efficientnet_b{i}" for i in range(9)]
        + ["tf_efficientnet_l2"]
    )
    assert sorted(MANIFESTS["torchvision"]) == [f"efficientnet_b{i}" for i in range(8)]


@pytest.mark.parametrize("source, name", CASES)
def test_full_size_variant_maps_key_for_key(source, name):
    manifest = MANIFESTS[source][name]
    model = meta_model(name)
    target = model.state_dict()
    sd = meta_state_dict(manifest)
    mapped = map_torchvision(sd) if source == "torchvision" else map_timm(sd, target)
    assert list(mapped) == list(target)  # same tensors, same order
    assert all(mapped[k][1].shape == target[k].shape for k in target)
    assert sum(p.numel() for p in model.parameters()) == manifest["params"]
    assert model.arch.padding is Padding(manifest["padding"])
    assert detect_source(sd, model) == source
    loaded = load_foreign(model, sd)
    assert loaded.eps == manifest["eps"] == model.arch.norm.eps == model.bn1.eps


def test_another_variant_fails_naming_the_first_tensor():
    b1 = meta_state_dict(MANIFESTS["timm"]["efficientnet_b1"])
    with pytest.raises(EffnetError, match=r"'blocks\.0\.1\.conv_dw\.weight' has no counterpart"):
        load_foreign(meta_model("efficientnet_b0"), b1)
    b2 = meta_state_dict(MANIFESTS["torchvision"]["efficientnet_b2"])
    with pytest.raises(EffnetError, match=r"'features\.0\.0\.weight' \(ours: 'conv_stem\.weight'\) "
                       r"has shape 32x3x3x3 but efficientnet_b3 expects 40x3x3x3"):  # fmt: skip
        load_foreign(meta_model("efficientnet_b3"), b2)
