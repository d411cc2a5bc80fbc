"""effnet convert: timm / torchvision / effnet checkpoints into our saved-model format."""

from __future__ import annotations

import argparse

from effnet.cli._common import positive_int
from effnet.weights.foreign import SOURCES
from effnet.weights.load import convert


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert a timm/torchvision/efficientnet_pytorch checkpoint into a model directory",
        description="Load a local .pth/.bin/.safetensors checkpoint (timm, torchvision, "
        "efficientnet_pytorch or effnet; never executing code from it) into the named "
        "architecture and write config.json + model.safetensors. Use tf_efficientnet_* names "
        "for timm's tf_ weights and for efficientnet_pytorch weights (TF 'same' padding).",
    )
    p.add_argument("weights", help="checkpoint file or directory")
    p.add_argument("--model", required=True, help="architecture name, e.g. efficientnet_b0")
    p.add_argument("--out", required=True, metavar="DIR", help="output model directory")
    p.add_argument("--source", choices=SOURCES, default="auto", help="default: from key names")
    p.add_argument("--num-classes", type=positive_int, default=1000, help="classifier size (1000)")
    p.add_argument("--class-names", metavar="FILE", help="text file, one class name per line")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out directory")
    p.set_defaults(func=cmd_convert)


def cmd_convert(args: argparse.Namespace) -> int:
    from effnet.infer import read_class_names

    names = read_class_names(args.class_names) if args.class_names else None
    out, loaded = convert(
        args.weights, args.model, args.out, source=args.source,
        num_classes=args.num_classes, class_names=names, overwrite=args.force,
    )  # fmt: skip
    print(
        f"loaded {loaded.tensors} tensors ({loaded.source}, batch-norm eps {loaded.eps:g}) "
        f"into {args.model}; wrote {out}"
    )
    return 0
