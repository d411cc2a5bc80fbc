"""A search space as data: per stage, the choices a MnasNet-style search picks from.

Section 4 of the EfficientNet paper finds B0 with the search space of MnasNet (Tan et al.
2019, section 4.1): a fixed sequence of stages, each with its own operator, kernel size,
expansion ratio, squeeze-excitation ratio, number of layers and output channels; strides
and the input resolution are fixed. Every point of a :class:`SearchSpace` is an
:class:`~effnet.arch.Architecture`: :func:`arch_from_params` makes it from a dict of choices
(pure, no Optuna), :func:`sample` draws that dict from an Optuna trial under stable names
(``stem_out_channels``, ``s3_kernel``, ...: ``s<i>`` is the i-th entry of ``stages``, the
numbering of ``Architecture`` errors; Table 1 calls it stage i + 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from effnet.arch import Architecture, Block
from effnet.errors import EffnetError
from effnet.record import Record, checked_fields, construct
from effnet.scaling import round_filters

# the choices of one stage, in the order of its parameter names; the values are Stage fields
CHOICES = ("block", "kernel", "expand", "se", "layers", "out_channels")


@dataclass(frozen=True)
class StageSpace:
    """The choices of one stage (Table 1 row); its stride is fixed."""

    stride: int  # stride of the stage's first block
    out_channels: tuple[int, ...]  # output channels
    layers: tuple[int, ...] = (1, 2, 3)  # blocks in the stage
    kernel: tuple[int, ...] = (3, 5)  # depthwise (or main) kernel size
    expand: tuple[float, ...] = (1, 4, 6)  # expansion ratio
    se: tuple[float, ...] = (0.0, 0.25)  # squeeze-excitation ratio; 0 = none
    block: tuple[str, ...] = ("mbconv",)  # block types (effnet.arch.Block values)


@dataclass(frozen=True)
class SearchSpace(Record):
    """Stem, stages and head choices; every other Architecture field is fixed."""

    name: str
    stages: tuple[StageSpace, ...]
    stem_out_channels: tuple[int, ...]
    head_out_channels: tuple[int, ...]
    resolution: int  # input pixels, fixed by the user (the paper searches at 224)
    # other Architecture fields every sample gets, e.g. {"divisor": 4, "stem": {"stride": 1}}
    fields: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check(self)

    def __hash__(self) -> int:  # ``fields`` is a dict; the JSON text names the space
        return hash(self.to_json(indent=None, sort_keys=True))

    KIND: ClassVar[str] = "search space"  # JSON in and out: effnet.record.Record

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchSpace:
        d = checked_fields(cls, data, cls.KIND)
        if not isinstance(d.get("stages", []), list):
            raise EffnetError("search space: 'stages' must be a list")
        stages = []
        for i, raw in enumerate(d.get("stages", []), start=1):
            where = f"search space: stage {i}"
            raw = checked_fields(StageSpace, raw, where)
            for key in CHOICES:
                if key in raw:
                    raw[key] = _choices(raw[key], f"{where}: {key}")
            stages.append(construct(StageSpace, raw, where))
        d["stages"] = tuple(stages)
        for key in ("stem_out_channels", "head_out_channels"):
            if key in d:
                d[key] = _choices(d[key], f"search space: {key}")
        if not isinstance(d.get("fields", {}), dict):
            raise EffnetError("search space: 'fields' must be an object of Architecture fields")
        return construct(cls, d, cls.KIND)


def _choices(value: Any, where: str) -> tuple:
    if not isinstance(value, list | tuple):
        raise EffnetError(f"{where} must be a list of choices, got {value!r}")
    return tuple(value)


def check(space: SearchSpace) -> None:
    """Every choice is a value an Architecture accepts; errors name the stage and field."""
    if not isinstance(space.name, str) or not space.name or not space.name.isprintable():
        raise EffnetError(f"search space: name must be a printable string, got {space.name!r}")
    if not space.stages:
        raise EffnetError(f"search space {space.name}: no stages (the space is empty)")
    for key in ("stem_out_channels", "head_out_channels"):
        if not getattr(space, key):
            raise EffnetError(f"search space {space.name}: {key} has no choices (empty)")
    known = ", ".join(b.value for b in Block)
    for i, s in enumerate(space.stages, start=1):
        for key in CHOICES:
            values = getattr(s, key)
            if not isinstance(values, tuple) or not values:
                raise EffnetError(f"search space {space.name}: stage {i}: {key} has no choices")
            if len(set(values)) != len(values):
                raise EffnetError(
                    f"search space {space.name}: stage {i}: {key} repeats a choice {values}"
                )
        for b in s.block:
            if b not in {x.value for x in Block}:
                raise EffnetError(
                    f"search space {space.name}: stage {i}: unknown block type {b!r} "
                    f"(known: {known})"
                )
    # one architecture per choice value (the rest at their first choice): the Architecture's
    # own validation then names any value it refuses, with the stage
    base = first_params(space)
    for key, values in choice_table(space).items():
        for v in values:
            arch_from_params(space, {**base, key: v})


# -- points of the space --------------------------------------------------------------------
def choice_table(space: SearchSpace) -> dict[str, tuple]:
    """Parameter name -> its choices, in a stable order (the names Optuna records)."""
    table: dict[str, tuple] = {"stem_out_channels": space.stem_out_channels}
    for i, s in enumerate(space.stages, start=1):
        for key in CHOICES:
            table[f"s{i}_{key}"] = getattr(s, key)
    table["head_out_channels"] = space.head_out_channels
    return table


def first_params(space: SearchSpace) -> dict[str, Any]:
    return {k: v[0] for k, v in choice_table(space).items()}


def space_size(space: SearchSpace) -> int:
    """How many parameter combinations the space holds."""
    return math.prod(len(v) for v in choice_table(space).values())


def arch_from_params(
    space: SearchSpace, params: dict[str, Any], name: str | None = None
) -> Architecture:
    """The architecture a dict of choices describes (what a trial's ``params`` hold)."""
    table = choice_table(space)
    unknown = sorted(set(params) - set(table))
    if unknown:
        raise EffnetError(f"search space {space.name}: unknown parameter(s) {', '.join(unknown)}")
    missing = [k for k in table if k not in params]
    if missing:
        raise EffnetError(f"search space {space.name}: no value for {', '.join(missing)}")
    for key, value in params.items():
        if value not in table[key] or isinstance(value, bool):
            raise EffnetError(
                f"search space {space.name}: {key} = {value!r} is not one of {list(table[key])}"
            )
    stages = []
    for i, s in enumerate(space.stages, start=1):
        stage = {key: params[f"s{i}_{key}"] for key in CHOICES}
        stages.append({**stage, "stride": s.stride})
    data: dict[str, Any] = {
        "name": name or f"{space.name}-sample",
        "stages": stages,
        "stem": {"out_channels": params["stem_out_channels"]},
        "head": {"out_channels": params["head_out_channels"]},
        "resolution": space.resolution,
    }
    for key, value in space.fields.items():
        if key in ("name", "stages", "resolution"):
            raise EffnetError(f"search space {space.name}: fields may not set {key!r}")
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**value, **data[key]}  # the searched channels win
        else:
            data[key] = value
    try:
        return Architecture.from_dict(data)
    except EffnetError as e:
        raise EffnetError(f"search space {space.name}: {e}") from None


def sample(space: SearchSpace, trial: Any, name: str | None = None) -> Architecture:
    """Draw every choice from an Optuna trial (``suggest_categorical``) and build it."""
    params = {k: trial.suggest_categorical(k, list(v)) for k, v in choice_table(space).items()}
    return arch_from_params(space, params, name)


def params_of(space: SearchSpace, arch: Architecture) -> dict[str, Any]:
    """The choices that describe ``arch`` (an EffnetError when it is outside the space)."""
    params: dict[str, Any] = {
        "stem_out_channels": arch.stem.out_channels,
        "head_out_channels": arch.head.out_channels,
    }
    for i, s in enumerate(arch.stages, start=1):
        for key in CHOICES:
            v = getattr(s, key)
            params[f"s{i}_{key}"] = v.value if isinstance(v, Block) else v
    made = arch_from_params(space, params, arch.name)
    if made != arch:
        raise EffnetError(f"{arch.name} differs from every point of search space {space.name}")
    return params


# -- cost bounds ----------------------------------------------------------------------------
def reachable_macs(space: SearchSpace, shape: tuple[int, int] = (1000, 3)) -> tuple[int, int]:
    """(smallest, largest) multiply-adds of any architecture in the space, with a head of
    ``shape`` = (num_classes, in_chans).

    Why the extreme choices give the extremes: strides and resolution are fixed, so every
    layer's output size is too, and every registered block's multiply-adds grow with its
    input and output channels, kernel, expansion (MBConv and Fused-MBConv: mid = in x
    expand; bottleneck: mid = out x expand), SE ratio (0: no SE layers) and layer count;
    the stem and head grow with their channels. Block types are not ordered, so each
    stage's block type is chosen on its own: with the channels fixed at an extreme, a
    stage's block type changes only that stage's cost (the total is a sum over stages).
    """
    low = _extreme(space, shape, smallest=True)
    high = _extreme(space, shape, smallest=False)
    return low, high


def _extreme(space: SearchSpace, shape: tuple[int, int], smallest: bool) -> int:
    # torch: counting builds the network on the meta device
    from effnet.profile import arch_macs

    pick = min if smallest else max
    params = {k: pick(v) for k, v in choice_table(space).items() if not k.endswith("_block")}
    blocks = {f"s{i}_block": s.block[0] for i, s in enumerate(space.stages, start=1)}

    def cost(b: dict[str, str]) -> int:
        return arch_macs(arch_from_params(space, {**params, **b}), *shape)

    total = cost(blocks)
    for i, s in enumerate(space.stages, start=1):
        for b in s.block[1:]:  # a stage's own cost differs by the same amount as the total
            other = cost({**blocks, f"s{i}_block": b})
            if (other < total) == smallest and other != total:
                blocks, total = {**blocks, f"s{i}_block": b}, other
    return total


# -- the default space ----------------------------------------------------------------------
# MnasNet's space is relative to a hand-made network: filter sizes x {0.75, 1.0, 1.25} and
# layers {N - 1, N, N + 1} of MobileNetV2's (section 4.1); we take B0's rows as that network
RELATIVE_WIDTHS = (0.75, 1.0, 1.25)


def space_around(
    base: Architecture,
    name: str,
    width: float = 1.0,
    resolution: int | None = None,
    fields: dict[str, Any] | None = None,
) -> SearchSpace:
    """A MnasNet-style space around ``base`` at ``width``: channels at 0.75, 1 and 1.25 of
    its (rounded to ``fields["divisor"]`` or the base's), layers N - 1..N + 1, kernel 3 or 5,
    expansion 1, 4 or 6, SE 0 or 0.25, MBConv; strides, stem kernel and the rest as ``base``."""
    divisor = int((fields or {}).get("divisor", base.divisor))

    def channels(c: int) -> tuple[int, ...]:
        return tuple(sorted({round_filters(c, width * m, divisor) for m in RELATIVE_WIDTHS}))

    stages = tuple(
        StageSpace(
            stride=s.stride,
            out_channels=channels(s.out_channels),
            layers=tuple(n for n in (s.layers - 1, s.layers, s.layers + 1) if n >= 1),
        )
        for s in base.stages
    )
    return SearchSpace(
        name=name,
        stages=stages,
        stem_out_channels=channels(base.stem.out_channels),
        head_out_channels=channels(base.head.out_channels),
        resolution=resolution or base.resolution,
        fields=dict(fields or {}),
    )


def default_space() -> SearchSpace:
    """Around B0 at 0.35 width on 16 px inputs with the study's fair-proxy fields: the quick
    study's baseline (B0 at 0.35 width, 1.31M multiply-adds on Fashion-MNIST) is a point of
    it. 3^18 x 2^19 (2e14) combinations, from 0.11M to 4.7M multiply-adds on Fashion-MNIST
    (10 classes, 1 channel)."""
    from effnet.families.efficientnet import B0
    from effnet.study.presets import FAIR_PROXY_FIELDS, quick

    study = quick()
    return space_around(
        B0, "b0-mnas", study.baseline_width, study.resolution, dict(FAIR_PROXY_FIELDS)
    )
