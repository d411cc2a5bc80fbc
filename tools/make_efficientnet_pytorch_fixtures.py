"""Fixtures made with the real ``efficientnet_pytorch`` package (PyPI efficientnet-pytorch).

Runs in the reference environment (``../shared/tools/reference-env.sh``, then
``/opt/effnet-reference/bin/pip install efficientnet-pytorch``), never in CI:

    /opt/effnet-reference/bin/python tools/make_efficientnet_pytorch_fixtures.py small [OUT]
    /opt/effnet-reference/bin/python tools/make_efficientnet_pytorch_fixtures.py full OUT SPEC...

``small`` writes two tiny models in the package's naming (width 0.0625, depth 0.3; 8
blocks with the released block structure: MBConv1 first, stride 2 with 3x3 and 5x5
kernels, a residual repeat), built with its default static "same" padding for a 45x45
image (odd sizes, so the padding is uneven), random weights drawn as the official code
initialises them (``tf_init``) with batch-norm statistics randomised as in
make_weight_fixtures.py, their input and output,
``efficientnet_pytorch.json`` saying how they were built, and
``efficientnet_pytorch_manifests.json.gz`` with the state-dict names and shapes of every
full-size model (B0-B8, L2 and Lite0, built on the meta device; 28 KB compressed).
One tiny model is B0-shaped; the other is Lite-shaped (no SE, ReLU6): the package has no
Lite models, so its own classes are built with ``se_ratio=None`` and ReLU6 in place of
Swish, which is the naming Lite checkpoints for it use. At width 0.0625 the package
scales the stem and head too (Lite keeps them), which the JSON records, and the first
block of stages 1 and 5 maps 8 channels to 8 with stride 1, where the package adds no
residual (see ``no_skip_stages``); no released size has such a block.

``full`` (what the slow reference test calls): ``NAME:BUILT:RES`` builds the package's
NAME (``efficientnet-b0``, ``efficientnet-lite0``, ...) for a BUILT x BUILT image and runs
it on RES x RES; writes its state dict and output.
"""

from __future__ import annotations

import gzip
import json
import math
import sys
from pathlib import Path

import efficientnet_pytorch
import torch
from efficientnet_pytorch import EfficientNet
from efficientnet_pytorch.utils import efficientnet
from make_weight_fixtures import write_case

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "weights"
WIDTH, DEPTH, RES, NUM_CLASSES = 0.0625, 0.3, 45, 10
# the official efficientnet_lite_builder.py: (width, depth, resolution, dropout)
LITE = {"efficientnet-lite0": (1.0, 1.0, 224, 0.2)}
MANIFEST_NAMES = [f"efficientnet-b{i}" for i in range(9)] + ["efficientnet-l2", *LITE]


def lite_model(width: float, depth: float, image_size: int, num_classes: int) -> EfficientNet:
    """The package's classes with Lite's changes: no squeeze-excitation, ReLU6.

    Exact for Lite0 only: the package also scales the stem, head, first and last stage,
    which Lite keeps (no difference at width and depth 1).
    """
    blocks, params = efficientnet(width, depth, image_size, num_classes=num_classes)
    model = EfficientNet([b._replace(se_ratio=None) for b in blocks], params)
    model._swish = torch.nn.ReLU6()
    for block in model._blocks:
        block._swish = torch.nn.ReLU6()
    return model


def package_model(name: str, image_size: int | None = None, **params: object) -> EfficientNet:
    if name in LITE:
        width, depth, res, _ = LITE[name]
        return lite_model(width, depth, image_size or res, int(params.get("num_classes", 1000)))
    if image_size:
        params["image_size"] = image_size
    return EfficientNet.from_name(name, **params)


def no_skip_stages(model: EfficientNet) -> list[int]:
    """Stages (1 = first) whose first block has stride 1 and in == out but no residual.

    The package keeps the stride of a stage's first block as a list (``[1]``), so its
    ``stride == 1`` test fails there and that block never adds its input, where the
    official code and ours do. Released sizes never have in == out there.
    """
    out, stage = [], 0
    for block in model._blocks:
        args = block._block_args
        if isinstance(args.stride, list):
            stage += 1
            if args.stride == [1] and args.input_filters == args.output_filters:
                out.append(stage)
        elif stage in out:
            raise ValueError(f"stage {stage} repeats a block that has no residual in the package")
    return out


def tf_init(model: torch.nn.Module, seed: int) -> None:
    """Random conv weights as the official code draws them (normal, fan-out), biases too.

    The package keeps PyTorch's default init, under which a random tiny network all but
    ignores its input (logits of two images agree to 1e-4), too weak a test.
    """
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            m.weight.data = torch.randn(m.weight.shape, generator=g) * math.sqrt(2.0 / fan_out)
            if m.bias is not None:
                m.bias.data = torch.randn(m.bias.shape, generator=g) * 0.1


def manifest(model: torch.nn.Module) -> dict:
    sd = model.state_dict()
    return dict(
        params=sum(p.numel() for p in model.parameters()),
        keys=[[k, list(v.shape)] for k, v in sd.items()],
    )


def make_small(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tiny = dict(width_coefficient=WIDTH, depth_coefficient=DEPTH, num_classes=NUM_CLASSES)
    cases = {
        "efficientnet_pytorch_b0_w00625_d03": (
            package_model("efficientnet-b0", RES, **tiny),
            dict(model="tf_efficientnet_b0", stem=8, head=80),
        ),
        "efficientnet_pytorch_lite0_w00625_d03": (
            lite_model(WIDTH, DEPTH, RES, NUM_CLASSES),
            dict(model="tf_efficientnet_lite0", stem=8, head=80),
        ),
    }
    common = dict(source="efficientnet_pytorch", width=WIDTH, depth=DEPTH, built_for=RES,
                  num_classes=NUM_CLASSES)  # fmt: skip
    index = {}
    for seed, (name, (model, meta)) in enumerate(cases.items()):
        meta = dict(common, no_skip_stages=no_skip_stages(model), **meta)
        tf_init(model, seed)
        index[name] = write_case(out, name, model, RES, seed, meta)
    (out / "efficientnet_pytorch.json").write_text(json.dumps(index, indent=1) + "\n")
    with torch.device("meta"):
        manifests = {name: manifest(package_model(name)) for name in MANIFEST_NAMES}
    manifests["version"] = efficientnet_pytorch.__version__
    text = json.dumps(manifests, separators=(",", ":")).encode()
    (out / "efficientnet_pytorch_manifests.json.gz").write_bytes(gzip.compress(text, 9, mtime=0))


def make_full(out: Path, specs: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        name, built, res = spec.split(":")
        model = package_model(name, int(built))
        tf_init(model, 0)
        stem = f"efficientnet_pytorch_{name}_{built}_{res}"
        info = write_case(out, stem, model, int(res), 0, dict(source="efficientnet_pytorch"))
        print(json.dumps(dict(info, name=name, built=int(built), res=int(res))), flush=True)
        del model


def main(argv: list[str]) -> None:
    torch.set_num_threads(2)
    mode = argv[0] if argv else "small"
    if mode == "full":
        make_full(Path(argv[1]), argv[2:])
    else:
        make_small(Path(argv[1]) if len(argv) > 1 else OUT)


if __name__ == "__main__":
    main(sys.argv[1:])
