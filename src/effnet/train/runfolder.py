"""The run folder's owner: its layout, its lock, and what a resume may and may not change.

Resume continues the run the folder describes: the saved model, data and recipe. Two recipe
fields may change, each with a stated meaning:

- ``epochs``: the new total length. The step schedule (x decay_rate every decay_epochs)
  does not depend on it and continues unchanged; a cosine schedule, and an EMA decay
  adapted to the run's length, are recomputed for the new total from the current step on
  (so extending a cosine run raises its learning rate from where it had annealed to). It
  may not be below the epochs already trained.
- ``max_time_s``: the new total training-time limit, counting the time already spent.

The data's ``workers`` may change too (decoding processes do not change the images). Any
other difference is refused in one line naming the field. A fine-tuning run keeps its init
(run.json ``"init"``) and its recipe's ``freeze_epochs``, ``backbone_lr_mult`` and
``freeze_bn``: the weights come from the checkpoint, or again from the init when the run
was killed before its first checkpoint (``effnet.train.finetune``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from effnet.data import DataSpec
from effnet.data.fingerprint import difference
from effnet.errors import EffnetError
from effnet.io import atomic_write_text
from effnet.rundir import ToolFolder
from effnet.train import checkpoint
from effnet.train.recipe import BEFORE_2026_12_08, Recipe

# A run's own file is run.json; config.json is a saved model's (the run's model/ holds one).
# Runs made before 2026-12-08 named theirs config.json: still read, and kept, for a release.
CONFIG, OLD_CONFIG = "run.json", "config.json"
METRICS, SUMMARY = "metrics.jsonl", "summary.json"
CHECKPOINTS, MODEL, BAD_FILES = "checkpoints", "model", "bad_files.txt"
RECIPE_ON_RESUME = ("epochs", "max_time_s")
DATA_ON_RESUME = ("workers",)


def open_run(out: Path, resume: bool, main: bool) -> tuple[ToolFolder, dict[str, Any] | None]:
    """The run folder and, on resume, its saved config (locked on the main process).

    A new run's folder is only checked here; ``claim`` makes it once the data loaded."""
    folder = ToolFolder(out, "run")
    if not resume:
        if folder.has_content():
            raise EffnetError(already_exists(out))
        return folder, None
    read_config(out)  # a run folder at all, before the lock is taken in it
    if main:
        folder.adopt()
    return folder, read_config(out)


def config_path(path: Path) -> Path:
    """The run's own file: ``run.json``, or ``config.json`` in a run made before the name
    changed (when that one is there and the new one is not)."""
    new, old = path / CONFIG, path / OLD_CONFIG
    return old if not new.is_file() and old.is_file() and (path / METRICS).exists() else new


def is_run(path: Path) -> bool:
    """Whether ``path`` is a run folder (its config and checkpoints folder exist)."""
    return config_path(path).is_file() and (path / CHECKPOINTS).is_dir()


def started(path: Path) -> bool:
    """Whether a run was started in ``path`` (resume it rather than start again)."""
    return config_path(path).is_file()


def finished(path: Path) -> bool:
    """Whether the run in ``path`` finished (its summary is written last)."""
    return (path / SUMMARY).is_file()


def train_or_resume(
    train_fn: Any, arch: Any, data: Any, recipe: Any, out: Path, progress: Any = False
) -> Any:
    """Train ``arch`` on ``data`` into ``out``, or resume the run ``out`` already holds (with
    ``recipe``'s resumable fields: a longer ``epochs`` extends it). ``train_fn`` has
    ``effnet.train.train``'s signature (studies and searches pass test doubles)."""
    again = started(out)
    return train_fn(
        None if again else arch, None if again else data, recipe, out,
        resume=again, progress=progress,
    )  # fmt: skip


def already_exists(out: Path) -> str:
    return f"run folder {out} already exists (pass --resume {out} to continue)"


def read_config(out: Path) -> dict[str, Any]:
    path = config_path(out)
    if path.name == OLD_CONFIG:
        print(f"effnet: note: {path} is a run's file under its old name (now {CONFIG}); "
              "read and kept as it is", file=sys.stderr)  # fmt: skip
    if not path.is_file():
        raise EffnetError(f"cannot resume: {out} has no {CONFIG} (not a run folder)")
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise EffnetError(f"cannot read {path}: {e}") from None
    if not isinstance(config, dict) or not {"model", "data", "recipe"} <= set(config):
        raise EffnetError(f"{path} is not a run config (needs model, data and recipe)")
    return config


def saved_recipe(out: str | Path) -> Recipe:
    """The recipe a run folder was trained with (to extend it: ``.replace(epochs=...)``)."""
    return recipe_of(read_config(Path(out)))


def recipe_of(config: dict[str, Any]) -> Recipe:
    """The recipe of a run's config. Runs made before the crop and the reported weights
    were recipe fields (none saved) resume as they started: the old crop rule (``"auto"``)
    and the minival-best weights."""
    d = config["recipe"]
    if isinstance(d, dict) and "crop" not in d:
        d = {**BEFORE_2026_12_08, **d}
    return Recipe.from_dict(d)


def saved_data(out: str | Path) -> DataSpec:
    return DataSpec.from_dict(read_config(Path(out))["data"])


def resumed_recipe(saved: Recipe, given: Recipe | None) -> Recipe:
    """``given`` when it differs from ``saved`` only in the fields a resume may change."""
    return saved if given is None else _only_allowed(saved, given, RECIPE_ON_RESUME, "recipe")


def resumed_data(saved: DataSpec, given: DataSpec | None) -> DataSpec:
    return saved if given is None else _only_allowed(saved, given, DATA_ON_RESUME, "data")


def _only_allowed(saved: Any, given: Any, allowed: tuple[str, ...], what: str) -> Any:
    for f in dataclasses.fields(saved):
        old, new = getattr(saved, f.name), getattr(given, f.name)
        if f.name not in allowed and _as_json(old) != _as_json(new):
            raise EffnetError(
                f"resume cannot change the {what}'s {f.name} (the run has {old!r}, given "
                f"{new!r}); only {', '.join(allowed)} may change: start a new run for others"
            )
    return given


def _as_json(value: Any) -> Any:
    """Values as config.json holds them: a tuple given and a list saved are the same."""
    return json.loads(json.dumps(value))


def check_length(recipe: Recipe, step: int, steps_per_epoch: int) -> None:
    if recipe.epochs * steps_per_epoch < step:
        raise EffnetError(
            f"resume with epochs {recipe.epochs:g}: the run already trained "
            f"{step / steps_per_epoch:g} epochs ({step} steps)"
        )


def save_resumed_recipe(out: Path, config: dict[str, Any], recipe: Recipe, step: int) -> None:
    """Record a changed recipe in run.json and metrics.jsonl (a ``resume`` record)."""
    old = recipe_of(config)
    changes = {
        k: [getattr(old, k), getattr(recipe, k)]
        for k in RECIPE_ON_RESUME
        if getattr(old, k) != getattr(recipe, k)
    }
    if not changes:
        return
    config = {**config, "recipe": recipe.to_dict()}
    atomic_write_text(config_path(out), json.dumps(config, indent=2) + "\n")
    log(out / METRICS, {"kind": "resume", "step": step, "changes": changes})


def log(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line and fsync it."""

    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def start_from_checkpoint(out: Path, checkpoint_every: int) -> bool:
    """Whether a resume loads a checkpoint (last.pt, else previous.pt) or starts from step
    0. Starting over is only allowed when the log shows no checkpoint was ever written
    (killed before the first one); a run whose checkpoints were deleted is refused, so its
    metrics are never overwritten."""
    ckpts = out / CHECKPOINTS
    if any((ckpts / name).exists() for name in (checkpoint.LAST, checkpoint.PREVIOUS)):
        return True
    records = _records(out / METRICS)
    saved_one = any(r.get("kind") == "epoch" for r in records) or any(
        checkpoint_every and r.get("step", 0) >= checkpoint_every for r in records
    )
    if saved_one:
        raise EffnetError(
            f"cannot resume {out}: {CHECKPOINTS}/{checkpoint.LAST} and {checkpoint.PREVIOUS} "
            f"are missing, but {METRICS} shows training past a checkpoint; restore a "
            "checkpoint or start a new run (nothing was changed)"
        )
    return False


def _records(path: Path) -> list[dict[str, Any]]:
    out = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if isinstance(r, dict):
            out.append(r)
    return out


def check_data(config: dict[str, Any], now: dict[str, Any], out: Path) -> None:
    """Refuse to resume on data that differs from the data the run started with."""

    saved = config.get("data_fingerprint") or {"classes": config.get("class_names")}
    if saved.get("classes") is None:
        return
    why = difference(saved, now)
    if why:
        raise EffnetError(f"cannot resume {out}: the data changed since the run started ({why})")


def merge_bad_files(out: Path, found: list[str]) -> int:
    """bad_files.txt as the union of what it lists and ``found``: never drops a line."""
    path = out / BAD_FILES
    try:
        listed = [line for line in path.read_text().splitlines() if line]
    except FileNotFoundError:
        listed = []
    merged = sorted(set(listed) | set(found))
    if merged and merged != listed:
        atomic_write_text(path, "".join(f"{p}\n" for p in merged))
    return len(merged)
