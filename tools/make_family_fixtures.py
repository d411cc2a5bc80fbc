"""Check MobileNetV1/V2 and ResNet-50 against independent implementations; write a fixture.

Run in the reference environment (torchvision 0.28, timm 1.0.31)::

    /opt/effnet-reference/bin/python tools/make_family_fixtures.py

For each family it builds our model and the reference one (torchvision ``resnet50`` and
``mobilenet_v2``, timm ``mobilenetv1_100`` with ReLU), maps every state-dict key of ours to
the reference's, checks that parameter counts and every tensor shape agree, fills our
weights with a deterministic formula, copies them into the reference model and checks that
both give the same logits in float64. It writes what it found to
``tests/fixtures/families/reference.json``; ``tests/test_families.py`` compares against it
without needing torchvision or timm.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

FIXTURE = Path(__file__).resolve().parents[1] / "tests/fixtures/families/reference.json"
RESOLUTION, NUM_CLASSES, BATCH = 64, 10, 2


def _uniform(shape: torch.Size | tuple[int, ...], seed: int) -> torch.Tensor:
    """Uniform(-1, 1) float64 values from torch's CPU generator (stable across versions)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, dtype=torch.float64, generator=g) * 2 - 1


def fill_deterministic(model: nn.Module) -> nn.Module:
    """Give every tensor of the state dict values that depend only on its order and shape.

    Convs and linears get He-scaled uniform weights; batch norms get mild affine parameters
    and running statistics (variance > 0), so a deep network's activations stay finite in
    eval mode and depend on the input (a wrong key map or stride changes the logits).
    """
    with torch.no_grad():
        for i, (name, t) in enumerate(model.state_dict().items()):
            if not t.is_floating_point():
                t.zero_()
                continue
            u = _uniform(t.shape, 1000 + i)
            if name.endswith("running_var"):
                value = 1.0 + 0.5 * u**2
            elif t.ndim == 1:
                value = (1.0 if name.endswith("weight") else 0.0) + 0.1 * u
            else:
                value = u * math.sqrt(6.0 / t[0].numel())
            t.copy_(value.to(t.dtype))
    return model


def sample_input() -> torch.Tensor:
    return _uniform((BATCH, 3, RESOLUTION, RESOLUTION), 7)


# -- key maps: our name -> the reference's name ------------------------------------------
def resnet_key(ours: str) -> str:
    ours = ours.replace("conv_stem.", "conv1.").replace("classifier.", "fc.")
    return re.sub(r"^blocks\.(\d+)\.", lambda m: f"layer{int(m[1]) + 1}.", ours)


def mobilenet_v1_key(ours: str) -> str:
    return ours  # timm uses the same role names


def mobilenet_v2_key_fn(layers: list[int]) -> Callable:
    """torchvision numbers blocks globally (features.1 ...) and nests conv/bn in Sequentials."""
    offsets = [1 + sum(layers[:i]) for i in range(len(layers))]
    head = 1 + sum(layers)
    fixed = {"conv_stem.": "features.0.0.", "bn1.": "features.0.1.",
             "conv_head.": f"features.{head}.0.", "bn2.": f"features.{head}.1.",
             "classifier.": "classifier.1."}  # fmt: skip

    def key(ours: str, expands: set[str]) -> str:
        m = re.match(r"^blocks\.(\d+)\.(\d+)\.(\w+)\.(.+)$", ours)
        if not m:
            for a, b in fixed.items():
                if ours.startswith(a):
                    return b + ours[len(a) :]
            raise KeyError(ours)
        stage, j, role, rest = int(m[1]), int(m[2]), m[3], m[4]
        block = f"blocks.{stage}.{j}"
        roles = (
            {"conv_pw": "0.0", "bn1": "0.1", "conv_dw": "1.0", "bn2": "1.1",
             "conv_pwl": "2", "bn3": "3"}
            if block in expands
            else {"conv_dw": "0.0", "bn2": "0.1", "conv_pwl": "1", "bn3": "2"}
        )  # fmt: skip
        return f"features.{offsets[stage] + j}.conv.{roles[role]}.{rest}"

    return key


# -- models -------------------------------------------------------------------------------
def reference_model(name: str, num_classes: int) -> nn.Module:
    if name == "resnet50":
        import torchvision

        return torchvision.models.resnet50(num_classes=num_classes)
    if name == "mobilenet_v2":
        import torchvision

        return torchvision.models.mobilenet_v2(num_classes=num_classes)
    if name == "mobilenet_v1":
        import timm

        return timm.create_model("mobilenetv1_100", num_classes=num_classes, act_layer=nn.ReLU)
    raise KeyError(name)


def key_map(name: str, model: nn.Module) -> dict[str, str]:
    """Every key of our state dict -> the reference's key."""
    keys = list(model.state_dict())
    if name == "resnet50":
        return {k: resnet_key(k) for k in keys}
    if name == "mobilenet_v1":
        return {k: mobilenet_v1_key(k) for k in keys}
    fn = mobilenet_v2_key_fn([s.layers for s in model.arch.stages])
    expands = {k.rsplit(".", 2)[0] for k in keys if ".conv_pw." in k}
    return {k: fn(k, expands) for k in keys}


def compare(name: str) -> dict:
    from effnet import create_model

    ours, ref = create_model(name), reference_model(name, 1000)
    mapping = key_map(name, ours)
    ref_sd, our_sd = ref.state_dict(), ours.state_dict()
    assert sorted(mapping.values()) == sorted(ref_sd), f"{name}: key sets differ"
    layers = []
    for k, rk in mapping.items():
        assert our_sd[k].shape == ref_sd[rk].shape, (k, rk, our_sd[k].shape, ref_sd[rk].shape)
        layers.append([k, rk, list(our_sd[k].shape)])
    params = sum(p.numel() for p in ours.parameters())
    ref_params = sum(p.numel() for p in ref.parameters())
    assert params == ref_params, (name, params, ref_params)

    ours = fill_deterministic(create_model(name, num_classes=NUM_CLASSES)).double().eval()
    ref = reference_model(name, NUM_CLASSES).double().eval()
    mapping = key_map(name, ours)
    ref.load_state_dict({mapping[k]: v for k, v in ours.state_dict().items()})
    x = sample_input()
    with torch.no_grad():
        ours_out, ref_out = ours(x), ref(x)
    diff = (ours_out - ref_out).abs().max().item()
    scale_ = ref_out.abs().max().item()
    assert diff <= 1e-9 * max(1.0, scale_), (name, diff, scale_)
    print(f"{name}: {params:,} params = reference; {len(layers)} tensors same shape; "
          f"max |logit diff| {diff:.2e} (logits up to {scale_:.3g})")  # fmt: skip
    return dict(params=params, layers=layers, logits=ref_out.tolist(), max_abs_diff=diff)


def scaled_param_counts() -> dict[str, int]:
    """Parameter counts of the references' own width multipliers (scale() must match)."""
    import timm
    import torchvision

    out = {}
    for w in (0.5, 0.75, 1.4, 2.0):
        m = torchvision.models.mobilenet_v2(width_mult=w)
        out[f"mobilenet_v2 width={w}"] = sum(p.numel() for p in m.parameters())
    for name, w in (("mobilenetv1_125", 1.25),):
        m = timm.create_model(name)
        out[f"mobilenet_v1 width={w}"] = sum(p.numel() for p in m.parameters())
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=FIXTURE)
    args = p.parse_args()
    import timm
    import torchvision

    fixture = dict(
        generated_by="tools/make_family_fixtures.py",
        versions=dict(
            torch=torch.__version__, torchvision=torchvision.__version__, timm=timm.__version__
        ),  # fmt: skip
        references=dict(
            resnet50="torchvision.models.resnet50",
            mobilenet_v2="torchvision.models.mobilenet_v2",
            mobilenet_v1="timm mobilenetv1_100, act_layer=nn.ReLU",
        ),  # fmt: skip
        input=dict(batch=BATCH, resolution=RESOLUTION, num_classes=NUM_CLASSES, dtype="float64"),
        models={name: compare(name) for name in ("mobilenet_v1", "mobilenet_v2", "resnet50")},
        scaled_params=scaled_param_counts(),
    )
    from effnet.io import atomic_write_text

    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
