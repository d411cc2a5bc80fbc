"""The architecture search as data: what it searches, on which data, against which target.

An :class:`ArchSearchConfig` is stored in the Optuna study (with its space written out), so
every worker that joins the search runs the same one. Nothing here imports torch until a
check needs to count multiply-adds.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from effnet.archsearch.objective import SOFT_W, check_target
from effnet.archsearch.space import SearchSpace, default_space, reachable_macs
from effnet.errors import EffnetError
from effnet.record import Record, checked_fields, construct
from effnet.rundir import safe_name

SAMPLERS = ("tpe", "nsga2", "random")


@dataclass(frozen=True)
class ArchSearchConfig(Record):
    """Everything one architecture search trains; saved in its storage and ``best.json``."""

    name: str = "architecture"  # the Optuna study name
    space: dict[str, Any] | str | None = None  # a SearchSpace object, its JSON file, or None:
    # effnet.archsearch.space.default_space() (B0-like, 0.35 width, 16 px)
    data: dict[str, Any] = field(default_factory=dict)  # effnet.data.DataSpec fields
    recipe: str = "cpu"  # a named recipe or a recipe JSON path
    recipe_overrides: dict[str, Any] = field(default_factory=dict)  # e.g. {"epochs": 1}
    target_macs: float | None = None  # T: the target multiply-adds (the paper's FLOPS)
    w: float = SOFT_W  # the objective's exponent (soft constraint)
    hard: bool = False  # MnasNet's hard constraint instead: w = 0 at or under T, -1 above
    trials: int = 24  # complete trials (trained candidates) the search runs to
    sampler: str = "tpe"  # "tpe" (reward), "nsga2" (accuracy and multiply-adds), "random"
    startup_trials: int = 8  # random trials first (TPE's startup; NSGA-II's population)
    seed: int = 0  # the sampler's and every training run's seed
    confirm_top: int = 2  # the best few re-trained longer to confirm the ranking; 0: none
    confirm_epoch_multiple: float = 2.0  # ... at this multiple of the recipe's epochs
    prune: bool = True  # skip candidates that cannot win even at 100% accuracy

    def __post_init__(self) -> None:
        safe_name(self.name, "search name")
        if self.target_macs is None:
            raise EffnetError("an architecture search needs a target (--target-flops T)")
        check_target(self.target_macs, self.w)
        if self.hard and self.w != SOFT_W:
            raise EffnetError(
                "the hard constraint fixes w (0 at or under the target, -1 above): give w or "
                "hard, not both"
            )
        if self.sampler not in SAMPLERS:
            raise EffnetError(f"unknown sampler {self.sampler!r} (known: {', '.join(SAMPLERS)})")
        for key, least in (("trials", 1), ("startup_trials", 0), ("confirm_top", 0),
                           ("seed", 0)):  # fmt: skip
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < least:
                raise EffnetError(f"search {key} must be a whole number >= {least}, got {v!r}")
        if not (math.isfinite(self.confirm_epoch_multiple) and self.confirm_epoch_multiple > 0):
            raise EffnetError(
                f"search confirm_epoch_multiple must be positive, got {self.confirm_epoch_multiple}"
            )
        if self.space is not None and not isinstance(self.space, dict | str):
            raise EffnetError("search space must be an object, a JSON file path or null")
        for key in ("data", "recipe_overrides"):
            if not isinstance(getattr(self, key), dict):
                raise EffnetError(f"search {key} must be an object")

    def replace(self, **changes: Any) -> ArchSearchConfig:
        return dataclasses.replace(self, **changes)

    def with_space_inline(self) -> ArchSearchConfig:
        """The same search with its space written out (what the storage keeps: workers on
        other machines need no file, and a file edited later changes nothing)."""
        return self.replace(space=load_space(self).to_dict())

    KIND: ClassVar[str] = "architecture search config"
    RENAMED: ClassVar[dict[str, str]] = {"confirm_budget": "confirm_epoch_multiple"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArchSearchConfig:
        return construct(cls, checked_fields(cls, data, cls.KIND), cls.KIND)


def load_space(cfg: ArchSearchConfig) -> SearchSpace:
    if cfg.space is None:
        return default_space()
    if isinstance(cfg.space, str):
        return SearchSpace.load(Path(cfg.space))
    return SearchSpace.from_dict(cfg.space)


def data_spec(cfg: ArchSearchConfig) -> Any:
    # torch: the data package loads it
    from effnet.data import DataSpec

    return DataSpec.from_dict(cfg.data)


def recipe_of(cfg: ArchSearchConfig, multiple: float = 1.0) -> Any:
    """The recipe every candidate trains with (``multiple`` x its epochs), seeded."""
    from effnet.train.recipe import resolve

    r = resolve(cfg.recipe).replace(**cfg.recipe_overrides).replace(seed=cfg.seed)
    return r.replace(epochs=r.epochs * multiple) if multiple != 1.0 else r


def validate(cfg: ArchSearchConfig) -> tuple[SearchSpace, tuple[int, int]]:
    """What every trial would fail on, before any runs and before a folder is made: the
    space, the data spec, the recipe, and a target inside what the space reaches. Returns
    the space and the (num_classes, in_chans) of the data."""
    from effnet.study.data_info import data_shape

    space = load_space(cfg)
    data = data_spec(cfg)
    if data.minival < 1:
        raise EffnetError("search data minival must be >= 1 image: candidates are ranked on it")
    recipe_of(cfg)
    shape = data_shape(cfg.data)
    low, high = reachable_macs(space, shape)
    assert cfg.target_macs is not None
    if not low <= cfg.target_macs <= high:
        raise EffnetError(
            f"target {_m(cfg.target_macs)} is outside what the space reaches: smallest "
            f"{_m(low)}, largest {_m(high)} multiply-adds (space {space.name}, "
            f"{space.resolution} px, {shape[0]} classes, {shape[1]} input channel(s))"
        )
    return space, shape


def _m(macs: float) -> str:
    return f"{macs / 1e6:.4g}M" if macs < 1e9 else f"{macs / 1e9:.4g}G"


def quick_config() -> ArchSearchConfig:
    """The ``--quick`` proxy: the quick study's data (3,000 Fashion-MNIST images, 500 held
    out), the default space at 16 px, one epoch per candidate, the quick study's training
    settings; the target is the quick study's baseline cost (B0 at 0.35 width, 1.31M
    multiply-adds), so the search looks for a better network at the same cost."""
    # torch: the target is counted on the meta device
    from effnet.study.data_info import data_shape
    from effnet.study.presets import quick
    from effnet.study.study import baseline_arch, macs

    study = quick()
    target = macs(baseline_arch(study), *data_shape(study.data))
    return ArchSearchConfig(
        name="quick",
        data=dict(study.data),
        recipe=study.recipe,
        recipe_overrides={**study.recipe_overrides, "epochs": 1},
        target_macs=float(target),
        trials=24,
    )


def stored_form(cfg: ArchSearchConfig) -> str:
    """The config as the storage keeps it: space written out, keys sorted, one line."""
    return json.dumps(cfg.with_space_inline().to_dict(), sort_keys=True)
