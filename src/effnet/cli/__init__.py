"""The ``effnet`` command: argparse sub-commands that only parse arguments and call functions.

Each module in this package defines ``register(subparsers)``, adding its sub-commands with
``set_defaults(func=...)``; the functions take the parsed namespace and return an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from effnet.errors import EffnetError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="effnet", description="EfficientNet and compound model scaling (Tan & Le 2019)."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EffnetError as e:
        print(f"effnet: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `effnet models | head`
        return 0
    except KeyboardInterrupt:
        print("effnet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
