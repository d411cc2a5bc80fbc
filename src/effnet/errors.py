"""The one exception type for errors a user can cause, and the one-line text of any error."""

from __future__ import annotations

import errno

MAX_MESSAGE = 400  # characters of an error's text shown on the one line


class EffnetError(Exception):
    """Bad input from a user: the message names the thing (model, stage, file, tensor).

    The CLI prints it on one line and exits with status 2.
    """


def _one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    out = " ".join(line.strip() for line in text.splitlines() if line.strip())
    return out if len(out) <= limit else out[: limit - 3] + "..."


def _os_error(e: OSError) -> str:
    what = e.strerror or _one_line(str(e)) or type(e).__name__
    if e.errno == errno.ENOSPC:
        what = "no space left on the device (disk full)"
    files = [str(f) for f in (e.filename, e.filename2) if f is not None]
    return f"{' -> '.join(files)}: {what}" if files else what


# exceptions that no input should cause: raised inside effnet, each is a bug in effnet
INTERNAL = (KeyError, IndexError, AttributeError, TypeError, NameError, AssertionError)


def is_internal(e: BaseException) -> bool:
    """An error of a kind user input must never cause (bad input is an ``EffnetError``)."""
    return isinstance(e, INTERNAL) and not isinstance(e, EffnetError)


def describe_internal(e: BaseException, command: str) -> str:
    """The one line for a bug: which command, what happened, and how to report it."""
    text = _one_line(str(e))
    what = f"{type(e).__name__} {text}" if text else type(e).__name__
    return (
        f"internal error in 'effnet {command}' ({what}): this is a bug in effnet, not in "
        "your input; please report it with the output of the same command run with --debug"
    )


def describe_error(e: BaseException) -> str:
    """One line saying what went wrong, for the CLI's error boundary.

    Our own errors already name the file and the problem; the rest (OS, decoding, torch,
    ONNX) are named by kind, with the file where the exception carries it.
    """
    if isinstance(e, EffnetError):  # ours are written to be read whole
        return _one_line(str(e), limit=4 * MAX_MESSAGE) or "error"
    if isinstance(e, OSError):
        return _os_error(e)
    if isinstance(e, UnicodeDecodeError):
        return f"input is not UTF-8 text (byte {e.start}: {e.reason})"
    if isinstance(e, RecursionError):
        return "input nested too deeply (e.g. JSON with thousands of nested brackets)"
    if isinstance(e, MemoryError):
        return "out of memory"
    if isinstance(e, OverflowError):
        return f"number too large ({_one_line(str(e))})"
    if isinstance(e, ZeroDivisionError):
        return f"division by zero ({_one_line(str(e))}): a size, count or time of 0?"
    text = _one_line(str(e))
    kind = type(e).__name__
    return f"{kind}: {text}" if text else kind
