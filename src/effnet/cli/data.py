"""``effnet data``: find Fashion-MNIST, or fetch it the way this machine allows."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data",
        help="find or fetch Fashion-MNIST (apt package, user cache, or checksummed download)",
        description=(
            "Looks for the four Fashion-MNIST IDX files in --data-dir (or "
            "$EFFNET_FASHION_MNIST_DIR), the Debian package location and the user cache; "
            "if absent, installs the Debian package (as root, where apt exists) or downloads "
            "the canonical files with SHA-256 checks. Prints the folder it found."
        ),
    )
    p.add_argument("--data-dir", help="a folder that must hold the four IDX files")
    p.add_argument("--no-fetch", action="store_true", help="only look; never install or download")
    p.set_defaults(func=cmd_data)


def cmd_data(args: argparse.Namespace) -> int:
    from effnet.data import fashion_mnist

    files = fashion_mnist.locate(args.data_dir, allow_download=not args.no_fetch)
    print(next(iter(files.values())).parent)
    return 0
