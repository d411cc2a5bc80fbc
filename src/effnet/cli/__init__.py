"""The ``effnet`` command: argparse sub-commands that only parse arguments and call functions.

Each module in this package defines ``register(subparsers)``, adding its sub-commands with
``set_defaults(func=...)``; the functions take the parsed namespace and return an exit code.

:func:`main` is the one error boundary: whatever goes wrong ends in one line on stderr
naming the problem (and the file, where known) and exit status 2; an error no input should
cause (a ``KeyError`` in our code) is named as an internal error of that command, with how to
report it. ``--debug`` or ``EFFNET_DEBUG=1`` shows the traceback instead.

Each command imports its heavy dependencies inside its own function, so ``effnet --help``
and the commands that do not need them start without loading ONNX Runtime, Optuna or
matplotlib.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from effnet.errors import describe_error, describe_internal, is_internal

DEBUG_ENV = "EFFNET_DEBUG"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (``effnet describe: error: ...``)."""

    def error(self, message: str) -> NoReturn:
        hint = f" (see {self.prog} --help)"
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}{hint}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="effnet", description="EfficientNet and compound model scaling (Tan & Le 2019)."
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help=f"show the full traceback of an error (or set {DEBUG_ENV}=1)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}").register(sub)
    return parser


def _debug(args: argparse.Namespace | None) -> bool:
    env = os.environ.get(DEBUG_ENV, "").strip().lower()
    return bool(getattr(args, "debug", False)) or env not in ("", "0", "false", "no")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # e.g. `effnet models | head`
        return 0
    except KeyboardInterrupt:
        print("effnet: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # the one boundary: every failure becomes one line
        if _debug(args):
            traceback.print_exc()
        elif is_internal(e):
            print(f"effnet: {describe_internal(e, args.command)}", file=sys.stderr)
        else:
            print(f"effnet: error: {describe_error(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
