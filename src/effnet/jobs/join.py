"""Create or join a study with its attributes stored atomically, as every worker sees it.

A worker that holds the attributes (the config, the candidates) takes the creation lock,
creates the study if it is not there, stores each attribute still missing and reads them
back: the first writer wins, and the caller compares what was stored with its own. That
also completes a half-created study (its creator died between creating it and storing
its config). A worker without the attributes never writes: it waits until all of them
are there, at most ``wait_s`` seconds, then stops with a one-line error.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna

from effnet.errors import EffnetError
from effnet.jobs.storage import creation_lock

JOIN_WAIT_S = 30.0  # how long a joining worker waits for a study's creator to store its config


@dataclasses.dataclass(frozen=True)
class Joined:
    """A worker's handle on a shared study."""

    study: Any  # optuna.Study, bound to the sampler and pruner it was opened with
    attrs: dict[str, Any]  # the stored values of the attributes asked for
    created: bool  # this worker created the study


def study_names(storage: Any) -> list[str]:
    return [s.study_name for s in storage.get_all_studies()]


def exists(storage: Any, name: str) -> bool:
    """Study ``name`` is in ``storage`` (one look-up, not a listing of every study)."""
    try:
        storage.get_study_id_from_name(name)
    except KeyError:
        return False
    return True


def join_study(
    storage: Any,
    url: str | None,
    out: Path,
    name: str,
    *,
    attrs: Mapping[str, Any] | None,
    keys: tuple[str, ...],
    what: str,
    wait_s: float | None = None,
    **create: Any,
) -> Joined:
    """Create or join study ``name`` in ``storage``; ``attrs`` (None: join only) holds
    the values of ``keys`` to store, ``create`` the keyword arguments of
    :func:`optuna.create_study` (sampler, pruner, direction(s)). ``what`` names the study
    in errors ("search", "study"); ``wait_s`` (default ``JOIN_WAIT_S``) bounds how long a
    worker without them waits for the creator to store them."""
    if attrs is None:
        if not exists(storage, name):
            raise EffnetError(f"no {what} named {name!r} in this storage to join")
        stored = _wait_for(storage, name, keys, what, JOIN_WAIT_S if wait_s is None else wait_s)
        study = optuna.load_study(
            study_name=name, storage=storage,
            **{k: v for k, v in create.items() if k in ("sampler", "pruner")},
        )  # fmt: skip
        return Joined(study, stored, created=False)
    missing = [k for k in keys if k not in attrs]
    assert not missing, f"attributes {missing} not given"
    with creation_lock(storage, url, out, name):
        created = not exists(storage, name)
        if not created:
            _check_kind(_read(storage, name), name, keys, what)
        study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True,
                                    **create)  # fmt: skip
        have = study.user_attrs
        for k in keys:
            if k not in have:
                study.set_user_attr(k, attrs[k])
        stored = _read(storage, name)
    return Joined(study, {k: stored[k] for k in keys}, created)


def _read(storage: Any, name: str) -> dict[str, Any]:
    return storage.get_study_user_attrs(storage.get_study_id_from_name(name))


def _wait_for(
    storage: Any, name: str, keys: tuple[str, ...], what: str, wait_s: float
) -> dict[str, Any]:
    deadline = time.monotonic() + wait_s
    delay = 0.05
    while True:
        stored = _read(storage, name)
        _check_kind(stored, name, keys, what)
        if all(k in stored for k in keys):
            return {k: stored[k] for k in keys}
        if time.monotonic() >= deadline:
            absent = ", ".join(k for k in keys if k not in stored)
            raise EffnetError(
                f"{what} {name!r} in this storage has no {absent} after {wait_s:g} s: its "
                "creator stopped before storing it, or another tool made it; start one "
                "worker with the config to complete it"
            )
        time.sleep(delay)
        delay = min(2 * delay, 1.0)


def _check_kind(stored: dict[str, Any], name: str, keys: tuple[str, ...], what: str) -> None:
    """A study holding attributes, none of them ours, belongs to another kind of work."""
    if stored and not any(k in stored for k in keys):
        raise EffnetError(f"study {name!r} in this storage is not a {what}; pick another name")
