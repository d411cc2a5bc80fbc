"""Records: the frozen dataclasses a user writes and reads as JSON.

Architectures, recipes, data specs, studies and search configs are all plain data saved
with the runs that used them. They share one way in and out: ``to_dict`` / ``to_json`` /
``save`` (atomic), and ``from_dict`` / ``from_json`` / ``load`` with one-line errors that
name the file and the unknown or malformed field. A record converts its own nested
values (tuples, enums, sub-records) by overriding ``from_dict``.

A field renamed to give a name one meaning stays readable for one release: the class's
``RENAMED`` maps the old name to the new, and reading a file that uses it says so once on
stderr (files already saved keep working; they are rewritten under the new name).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar, Self

from effnet.errors import EffnetError
from effnet.io import atomic_write_text


def checked_fields(cls: type, data: Any, where: str) -> dict[str, Any]:
    """``data`` as a new dict, after checking it is an object holding only fields of ``cls``."""
    if not isinstance(data, dict):
        raise EffnetError(f"{where}: expected an object, got {type(data).__name__}")
    data = renamed_fields(cls, data, where)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted((k for k in data if k not in names), key=str)
    if unknown:
        shown = (k if isinstance(k, str) and k.isidentifier() else repr(k) for k in unknown)
        raise EffnetError(f"{where}: unknown field(s) {', '.join(shown)}")
    return dict(data)


_NOTED: set[tuple[str, str]] = set()  # (where, old name) already noted in this process


def renamed_fields(cls: type, data: dict[str, Any], where: str) -> dict[str, Any]:
    """``data`` with ``cls.RENAMED``'s old field names turned into the new ones (a notice
    on stderr for each); both names at once is an error."""
    renamed: dict[str, str] = getattr(cls, "RENAMED", {})
    old = [k for k in renamed if k in data]
    if not old:
        return data
    import sys

    out = dict(data)
    for k in old:
        new = renamed[k]
        if new in out:
            raise EffnetError(f"{where}: give {new!r} or its old name {k!r}, not both")
        out[new] = out.pop(k)
        if (where, k) in _NOTED:
            continue
        _NOTED.add((where, k))
        print(f"effnet: note: {where}: field {k!r} is now {new!r} (the old name is read "
              "for one release)", file=sys.stderr)  # fmt: skip
    return out


def construct(cls: type, fields: dict[str, Any], where: str) -> Any:
    """``cls(**fields)``, turning a missing or mistyped argument into a one-line error."""
    try:
        return cls(**fields)
    except TypeError as e:
        raise EffnetError(f"{where}: {e}") from None


class Record:
    """Mixin for frozen dataclasses stored as JSON; ``KIND`` names it in error messages."""

    KIND: ClassVar[str] = "record"
    RENAMED: ClassVar[dict[str, str]] = {}  # old field name -> new, read for one release

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def to_json(self, indent: int | None = 2, sort_keys: bool = False) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=sort_keys)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return construct(cls, checked_fields(cls, data, cls.KIND), cls.KIND)

    @classmethod
    def from_json(cls, text: str) -> Self:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise EffnetError(f"{cls.KIND} JSON is malformed: {e}") from None
        except RecursionError:
            raise EffnetError(f"{cls.KIND} JSON is nested too deeply") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as e:
            raise EffnetError(f"cannot read {cls.KIND} file {p}: {e.strerror}") from None
        except UnicodeDecodeError as e:
            raise EffnetError(f"{cls.KIND} file {p} is not UTF-8 text (byte {e.start})") from None
        try:
            return cls.from_json(text)
        except EffnetError as e:
            raise EffnetError(f"{p}: {e}") from None

    def save(self, path: str | Path) -> Path:

        return atomic_write_text(path, self.to_json() + "\n")


def check_number_fields(obj: Any, what: str) -> None:
    """Every field annotated ``float`` or ``int`` (optionally ``| None``) holds a number, so
    a JSON "0.1" or true names its field in one line instead of failing later in arithmetic."""
    import dataclasses

    for f in dataclasses.fields(obj):
        kind = str(f.type).replace(" ", "")
        base, optional = kind.removesuffix("|None"), kind.endswith("|None")
        if base not in ("float", "int"):
            continue
        v = getattr(obj, f.name)
        if v is None and optional:
            continue
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        if base == "int":
            ok = ok and float(v).is_integer()
        if not ok:
            kind_name = "a whole number" if base == "int" else "a number"
            raise EffnetError(f"{what} {f.name} must be {kind_name}, got {v!r}")
