"""Weight-conversion fixtures made with the real timm and torchvision.

Runs in the reference environment (``../shared/tools/reference-env.sh``), never in CI:

    /opt/effnet-reference/bin/python tools/make_weight_fixtures.py small [OUT]
    /opt/effnet-reference/bin/python tools/make_weight_fixtures.py manifests [OUT]
    /opt/effnet-reference/bin/python tools/make_weight_fixtures.py full OUT RES SOURCE/NAME...

``small`` writes width/depth-reduced models with the same block structure as the
released ones (width 0.125, depth 1.1: stage 1 has two blocks, so timm's depthwise-separable
residual is exercised) as safetensors state dicts plus an input and the reference output.
Weights are random but batch-norm statistics are randomised too, with variances small
enough that the batch-norm epsilon visibly changes the output. ``manifests`` writes the
key/shape list of every full-size variant (built on the meta device: no memory, no
download). ``full`` is what the slow ``reference`` test calls: full-size models, their state
dicts and their outputs on a random input.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import timm
import torch
import torchvision
from safetensors.torch import save_file
from timm.models.efficientnet import _gen_efficientnet
from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "weights"
WIDTH, DEPTH, NUM_CLASSES = 0.125, 1.1, 10

TIMM_NAMES = [f"efficientnet_b{i}" for i in range(9)]
TIMM_NAMES += [f"tf_efficientnet_b{i}" for i in range(9)] + ["tf_efficientnet_l2"]
TORCHVISION_NAMES = [f"efficientnet_b{i}" for i in range(8)]


def randomise_batch_norm(model: torch.nn.Module, res: int, seed: int) -> None:
    """Real statistics of random inputs, then rescaled so the epsilon matters.

    The statistics come from one pass in train mode (so activations stay in range through
    the whole random network); each channel's variance is then multiplied by s in
    [0.002, 0.02] and its scale by sqrt(s), which leaves the function unchanged except
    that an epsilon of 1e-3 instead of 1e-5 now moves the output by several percent.
    """
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batch
        m.bias.data = torch.randn(m.num_features, generator=g) * 0.1
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 3, res, res, generator=g))
    for m in bns:
        s = torch.rand(m.num_features, generator=g) * 0.018 + 0.002
        m.running_var.mul_(s)
        m.weight.data.mul_(s.sqrt() * (torch.rand(m.num_features, generator=g) * 0.5 + 0.75))
        m.num_batches_tracked.fill_(int(torch.randint(1, 10**6, (1,), generator=g)))
        m.momentum = 0.1


def small_timm(tf: bool) -> torch.nn.Module:
    kwargs = dict(bn_eps=1e-3, pad_type="same") if tf else {}
    variant = "tf_efficientnet_b0" if tf else "efficientnet_b0"
    return _gen_efficientnet(
        variant, channel_multiplier=WIDTH, depth_multiplier=DEPTH, num_classes=NUM_CLASSES,
        **kwargs,
    )  # fmt: skip


def small_torchvision() -> torch.nn.Module:
    setting, last = _efficientnet_conf("efficientnet_b0", width_mult=WIDTH, depth_mult=DEPTH)
    return EfficientNet(setting, 0.2, last_channel=last, num_classes=NUM_CLASSES)


def classifier(model: torch.nn.Module) -> torch.nn.Linear:
    return [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]


def write_case(
    out: Path, name: str, model: torch.nn.Module, res: int, seed: int, meta: dict
) -> dict:
    torch.manual_seed(seed)
    randomise_batch_norm(model, res, seed)
    model.eval()
    x = torch.randn(2, 3, res, res, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        y = model(x)
        head = classifier(model)  # outputs of order 1, so an absolute tolerance means something
        head.weight.div_(y.abs().max())
        head.bias.div_(y.abs().max())
        y = model(x)
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(sd, out / f"{name}.safetensors", metadata={"source": meta["source"]})
    save_file({"input": x, "output": y}, out / f"{name}.io.safetensors")
    return dict(meta, input=list(x.shape), output_abs_max=float(y.abs().max()))


def make_small(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    common = dict(width=WIDTH, depth=DEPTH, num_classes=NUM_CLASSES)
    cases = {
        "timm_efficientnet_w0125_d11": (small_timm(False), 40, dict(
            source="timm", padding="symmetric", eps=1e-5, **common)),
        "timm_tf_efficientnet_w0125_d11": (small_timm(True), 45, dict(
            source="timm", padding="same", eps=1e-3, **common)),
        "torchvision_efficientnet_w0125_d11": (small_torchvision(), 40, dict(
            source="torchvision", padding="symmetric", eps=1e-5, **common)),
    }  # fmt: skip
    index = {}
    for seed, (name, (model, res, meta)) in enumerate(cases.items()):
        index[name] = write_case(out, name, model, res, seed, meta)
    (out / "fixtures.json").write_text(json.dumps(index, indent=1) + "\n")


def manifest(model: torch.nn.Module) -> dict:
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    same = any(type(m).__name__ == "Conv2dSame" for m in model.modules())
    sd = model.state_dict()
    return dict(
        eps=bns[0].eps,
        padding="same" if same else "symmetric",
        params=sum(p.numel() for p in model.parameters()),
        keys=[[k, list(v.shape)] for k, v in sd.items()],
    )


def make_manifests(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, dict] = {"timm": {}, "torchvision": {}}
    with torch.device("meta"):
        for name in TIMM_NAMES:
            result["timm"][name] = manifest(timm.create_model(name))
        for name in TORCHVISION_NAMES:
            result["torchvision"][name] = manifest(getattr(torchvision.models, name)())
    result["versions"] = dict(timm=timm.__version__, torchvision=torchvision.__version__)
    (out / "manifests.json").write_text(json.dumps(result, separators=(",", ":")) + "\n")


def make_full(out: Path, res: int, models: list[str]) -> None:
    """Full-size models (``SOURCE/NAME``: random weights, randomised BN) and their outputs."""
    out.mkdir(parents=True, exist_ok=True)
    for spec in models:
        source, name = spec.split("/")
        if source == "timm":
            model = timm.create_model(name)
        else:
            model = getattr(torchvision.models, name)()
        info = write_case(out, f"{source}_{name}", model, res, 0, dict(source=source, name=name))
        print(json.dumps(info), flush=True)
        del model


def main(argv: list[str]) -> None:
    torch.set_num_threads(2)
    mode = argv[0] if argv else "small"
    if mode == "full":
        make_full(Path(argv[1]), int(argv[2]), argv[3:])
        return
    out = Path(argv[1]) if len(argv) > 1 else OUT
    {"small": make_small, "manifests": make_manifests}[mode](out)


if __name__ == "__main__":
    main(sys.argv[1:])
