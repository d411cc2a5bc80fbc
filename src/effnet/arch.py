"""What a network is, as plain data: stem, stages of blocks, head.

Nothing here imports torch. An :class:`Architecture` is frozen, can be printed as the
paper's Table 1, saved as JSON, edited by hand and loaded back; ``effnet.model.build``
turns it into an ``nn.Module`` and ``effnet.scaling.scale`` turns it into a bigger or
smaller one.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from effnet.errors import EffnetError
from effnet.record import Record, checked_fields, construct


class Block(StrEnum):
    """Block types. A new one is a value here with its Table-1 label in ``operator``, and one
    class in ``effnet.blocks`` registered in ``BLOCKS`` (tests check every value has both)."""

    MBCONV = "mbconv"  # inverted residual with optional SE (EfficientNet, MnasNet, MobileNetV2)
    CONV = "conv"  # plain conv-bn-act (the searched space's "regular conv")
    DSCONV = "dsconv"  # depthwise kxk + BN + act, pointwise 1x1 + BN + act (MobileNetV1)
    BOTTLENECK = "bottleneck"  # ResNet 1x1-3x3-1x1 bottleneck with projection shortcut
    FUSED_MBCONV = "fused_mbconv"  # kxk expand conv, optional SE, 1x1 project (EfficientNetV2)

    def operator(self, s: Stage) -> str:
        """The stage's "operator" column in the paper's Table 1."""
        k = f"k{s.kernel}x{s.kernel}"
        ratio = int(s.expand) if float(s.expand).is_integer() else s.expand
        if self is Block.MBCONV:
            return f"MBConv{ratio}, {k}" + ("" if s.se else ", no SE")
        if self is Block.FUSED_MBCONV:  # EfficientNetV2's Table 4 labels; SE is the exception
            return f"Fused-MBConv{ratio}, {k}" + (f", SE{s.se:g}" if s.se else "")
        if self is Block.CONV:
            return f"Conv{s.kernel}x{s.kernel}"
        if self is Block.DSCONV:
            return f"DWConv{s.kernel}x{s.kernel} + Conv1x1"
        if self is Block.BOTTLENECK:
            return f"Bottleneck 1x1-{s.kernel}x{s.kernel}-1x1"
        raise EffnetError(f"block type {self.value!r} has no Table-1 label")


class Padding(StrEnum):
    SYMMETRIC = "symmetric"  # k // 2 on every side (PyTorch / timm / torchvision)
    SAME = "same"  # TensorFlow "SAME": computed from the input size at forward time


ACTIVATIONS = ("silu", "relu", "relu6")
INTERPOLATIONS = ("bicubic", "bilinear", "nearest", "lanczos", "box", "hamming")  # Pillow's


@dataclass(frozen=True)
class Stage:
    """One row of Table 1: ``layers`` blocks of one type; only the first one strides."""

    block: Block  # block type
    kernel: int  # depthwise (or main) kernel size
    stride: int  # stride of the first block of the stage
    out_channels: int  # output channels of every block in the stage
    layers: int  # number of blocks (repeats)
    expand: float = 1.0  # expansion ratio (MBConvN: N; bottleneck: 1/4 mid width -> 4)
    se: float = 0.0  # squeeze-excitation ratio of the block's input channels; 0 = no SE
    skip: bool = True  # identity residual when stride 1 and in == out
    scale_width: bool = True  # does the width multiplier apply to out_channels?
    scale_depth: bool = True  # does the depth multiplier apply to layers?


@dataclass(frozen=True)
class Stem:
    """The first convolution (Table 1 stage 1), optionally followed by a max-pool (ResNet)."""

    out_channels: int = 32
    kernel: int = 3
    stride: int = 2
    pool: bool = False  # 3x3 stride-2 max-pool after the conv (ResNet)
    scale_width: bool = True


@dataclass(frozen=True)
class Head:
    """1x1 conv to ``out_channels`` (0: none), global pooling, dropout, classifier."""

    out_channels: int = 1280
    scale_width: bool = True
    only_grow: bool = False  # MobileNetV2 rule: scale by max(1, width)


@dataclass(frozen=True)
class Norm:
    """Batch norm settings. PyTorch's momentum convention: TF's 0.99 is 0.01 here."""

    eps: float = 1e-3
    momentum: float = 0.01


# how a stage's layers x depth becomes whole layers: "ceil" as published (a 1-layer stage
# at depth 1.1 gets 2); "round" to the nearest (for small proxies, where ceil makes any
# depth above 1 add a layer to every stage)
DEPTH_ROUNDING = ("ceil", "round")


@dataclass(frozen=True)
class Architecture(Record):
    """A complete, concrete network description (channels and layers already rounded)."""

    name: str
    stages: tuple[Stage, ...]
    stem: Stem = field(default_factory=Stem)
    head: Head = field(default_factory=Head)
    resolution: int = 224  # native input resolution (square)
    dropout: float = 0.2  # before the classifier
    drop_path: float = 0.2  # stochastic depth: max drop rate, rising linearly over blocks
    activation: str = "silu"
    norm: Norm = field(default_factory=Norm)
    padding: Padding = Padding.SYMMETRIC
    divisor: int = 8  # channel counts are rounded to multiples of this when scaled
    depth_rounding: str = "ceil"  # layers x depth rounded up (the paper) or to the nearest
    width: float = 1.0  # provenance: width multiplier applied to the baseline
    depth: float = 1.0  # provenance: depth multiplier applied to the baseline
    # eval preprocessing, part of the model's config (never an implicit global)
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)

    def __post_init__(self) -> None:
        for key in ("mean", "std"):  # lists from Python callers; tuples keep it hashable
            if isinstance(getattr(self, key), list):
                object.__setattr__(self, key, tuple(getattr(self, key)))
        if not isinstance(self.padding, Padding):  # "same" from Python/CLI callers
            try:
                object.__setattr__(self, "padding", Padding(self.padding))
            except ValueError:
                raise EffnetError(f"{self.name}: unknown padding {self.padding!r}") from None
        validate(self)

    @property
    def num_blocks(self) -> int:
        return sum(s.layers for s in self.stages)

    def replace(self, **changes: Any) -> Architecture:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    # -- JSON (effnet.record.Record: to_dict, to_json, save, from_json, load) -----------
    KIND: ClassVar[str] = "architecture"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Architecture:
        return from_dict(data)


# -- validation ---------------------------------------------------------------------------
# The fields that make a model's eval transform, in the order a config lists them: written
# once here, read by images.Preprocess, the saved model config and fine-tuning.
PREPROCESSING_FIELDS = ("resolution", "crop_pct", "interpolation", "mean", "std")


def preprocessing(arch: Architecture) -> dict[str, Any]:
    """The eval transform the weights expect, as plain data (lists for mean and std)."""
    return {
        k: list(getattr(arch, k)) if k in ("mean", "std") else getattr(arch, k)
        for k in PREPROCESSING_FIELDS
    }


def validate(arch: Architecture) -> None:
    """Reject descriptions that cannot build; messages name the stage and the problem."""
    if not arch.stages:
        raise EffnetError(f"{arch.name}: an architecture needs at least one stage")
    for where, part in (("", arch), (": stem", arch.stem), (": head", arch.head),
                        (": norm", arch.norm)):  # fmt: skip
        _check_types(part, f"{arch.name}{where}")
    if arch.activation not in ACTIVATIONS:
        raise EffnetError(
            f"{arch.name}: unknown activation {arch.activation!r} (known: {', '.join(ACTIVATIONS)})"
        )
    _check_preprocessing(arch)
    if arch.resolution < 1:
        raise EffnetError(f"{arch.name}: resolution must be positive, got {arch.resolution}")
    if not 0.0 <= arch.dropout < 1.0:
        raise EffnetError(f"{arch.name}: dropout must be in [0, 1), got {arch.dropout}")
    if not 0.0 <= arch.drop_path < 1.0:
        raise EffnetError(f"{arch.name}: drop_path must be in [0, 1), got {arch.drop_path}")
    if arch.divisor < 1:
        raise EffnetError(f"{arch.name}: divisor must be >= 1, got {arch.divisor}")
    if arch.depth_rounding not in DEPTH_ROUNDING:
        raise EffnetError(
            f"{arch.name}: depth_rounding must be one of {', '.join(DEPTH_ROUNDING)}, "
            f"got {arch.depth_rounding!r}"
        )
    if arch.stem.out_channels < 1 or arch.stem.kernel < 1 or arch.stem.stride < 1:
        raise EffnetError(f"{arch.name}: stem channels, kernel and stride must be positive")
    if arch.head.out_channels < 0:
        raise EffnetError(f"{arch.name}: head channels must be >= 0")
    if arch.norm.eps <= 0 or not 0 <= arch.norm.momentum <= 1:
        raise EffnetError(f"{arch.name}: batch norm eps must be > 0 and momentum in [0, 1]")
    size = feature_size(arch.resolution, arch.stem.stride)
    if arch.stem.pool:
        size = feature_size(size, 2)
    for i, s in enumerate(arch.stages, start=1):
        where = f"{arch.name}: stage {i}"
        if not isinstance(s.block, Block):
            raise EffnetError(f"{where}: unknown block type {s.block!r}")
        _check_types(s, where)
        if s.layers < 1:
            raise EffnetError(f"{where}: layers must be >= 1, got {s.layers}")
        if s.out_channels < 1:
            raise EffnetError(f"{where}: out_channels must be >= 1, got {s.out_channels}")
        if s.kernel < 1 or s.kernel % 2 == 0:
            raise EffnetError(f"{where}: kernel must be a positive odd number, got {s.kernel}")
        if s.stride not in (1, 2):
            raise EffnetError(f"{where}: stride must be 1 or 2, got {s.stride}")
        if s.expand <= 0:
            raise EffnetError(f"{where}: expansion ratio must be positive, got {s.expand}")
        if not 0 <= s.se < 1:
            raise EffnetError(f"{where}: SE ratio must be in [0, 1), got {s.se}")
        if s.stride > 1 and size < 2:
            raise EffnetError(
                f"{where}: stride {s.stride} makes the feature map vanish at resolution "
                f"{arch.resolution} (input to this stage is {size}x{size})"
            )
        size = feature_size(size, s.stride)


def _check_preprocessing(arch: Architecture) -> None:
    """The eval transform: a std of 0 would turn every probability into NaN."""
    if arch.interpolation not in INTERPOLATIONS:
        raise EffnetError(
            f"{arch.name}: unknown interpolation {arch.interpolation!r} "
            f"(known: {', '.join(INTERPOLATIONS)})"
        )
    if not 0 < arch.crop_pct <= 1:
        raise EffnetError(f"{arch.name}: crop_pct must be in (0, 1], got {arch.crop_pct}")
    for key in ("mean", "std"):
        values = getattr(arch, key)
        if not isinstance(values, tuple) or len(values) not in (1, 3):
            raise EffnetError(f"{arch.name}: {key} must list 1 or 3 numbers, got {values!r}")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise EffnetError(f"{arch.name}: {key} must hold finite numbers, got {v!r}")
    if len(arch.mean) != len(arch.std):
        raise EffnetError(f"{arch.name}: mean and std must have the same length")
    if min(arch.std) <= 0:
        raise EffnetError(f"{arch.name}: std must be positive, got {list(arch.std)}")


_TYPES = {"int": numbers.Integral, "float": numbers.Real, "bool": bool, "str": str}
_KINDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}


def _check_types(part: object, where: str) -> None:
    """Scalar fields must have their declared type (a JSON file may hold "3" or 2.5 layers)."""
    for f in dataclasses.fields(part):  # type: ignore[arg-type]
        want, value = _TYPES.get(str(f.type)), getattr(part, f.name)
        if want is None:
            continue
        if not isinstance(value, want) or (isinstance(value, bool) and want is not bool):
            raise EffnetError(f"{where}: {f.name} must be {_KINDS[str(f.type)]}, got {value!r}")
        if f.type == "float" and not math.isfinite(value):
            raise EffnetError(f"{where}: {f.name} must be finite, got {value!r}")


def feature_size(size: int, stride: int) -> int:
    """Spatial size after a 'same'-style strided layer (ceil division)."""
    return math.ceil(size / stride)


def stage_resolutions(arch: Architecture) -> list[int]:
    """Input resolution of every stage (Table 1's 'input resolution' column)."""
    size = feature_size(arch.resolution, arch.stem.stride)
    if arch.stem.pool:
        size = feature_size(size, 2)
    out = []
    for s in arch.stages:
        out.append(size)
        size = feature_size(size, s.stride)
    out.append(size)  # input of the head
    return out


# -- JSON in ------------------------------------------------------------------------------
def from_dict(data: dict[str, Any]) -> Architecture:
    """Parse a JSON-like dict; errors name the stage and field."""
    data = checked_fields(Architecture, data, "architecture")
    if "name" not in data or "stages" not in data:
        raise EffnetError("architecture: 'name' and 'stages' are required")
    name = data["name"]
    if not isinstance(name, str) or not name or not name.isprintable():
        raise EffnetError(f"architecture: name must be a printable string, got {name!r}")
    stages_in = data["stages"]
    if not isinstance(stages_in, list):
        raise EffnetError(f"{name}: 'stages' must be a list")
    stages = []
    for i, raw in enumerate(stages_in, start=1):
        raw = checked_fields(Stage, raw, f"{name}: stage {i}")
        try:
            raw["block"] = Block(raw.get("block"))
        except ValueError:
            known = ", ".join(b.value for b in Block)
            raise EffnetError(
                f"{name}: stage {i}: unknown block type {raw.get('block')!r} (known: {known})"
            ) from None
        stages.append(construct(Stage, raw, f"{name}: stage {i}"))
    data["stages"] = tuple(stages)
    for key, cls in (("stem", Stem), ("head", Head), ("norm", Norm)):
        if key in data:
            data[key] = cls(**checked_fields(cls, data[key], f"{name}: {key}"))
    if "padding" in data:
        try:
            data["padding"] = Padding(data["padding"])
        except ValueError:
            raise EffnetError(f"{name}: unknown padding {data['padding']!r}") from None
    for key in ("mean", "std"):
        if key in data:
            if not isinstance(data[key], list | tuple):
                raise EffnetError(f"{name}: {key} must be a list of numbers")
            data[key] = tuple(data[key])
    return construct(Architecture, data, name)


# -- Table 1 rendering --------------------------------------------------------------------
def table_rows(arch: Architecture) -> list[tuple[str, str, str, str, str]]:
    """(stage, operator, input resolution, out channels, layers) rows, like Table 1."""
    res = stage_resolutions(arch)
    r0 = arch.resolution
    stem_op = f"Conv{arch.stem.kernel}x{arch.stem.kernel}"
    if arch.stem.stride > 1:
        stem_op += f" (stride {arch.stem.stride})"
    if arch.stem.pool:
        stem_op += " & MaxPool"
    rows = [("1", stem_op, f"{r0}x{r0}", str(arch.stem.out_channels), "1")]
    for i, s in enumerate(arch.stages):
        rows.append(
            (
                str(i + 2),
                s.block.operator(s),
                f"{res[i]}x{res[i]}",
                str(s.out_channels),
                str(s.layers),
            )  # fmt: skip
        )
    last = res[-1]
    head_op = "Conv1x1 & Pooling & FC" if arch.head.out_channels else "Pooling & FC"
    head_ch = arch.head.out_channels or arch.stages[-1].out_channels
    rows.append((str(len(arch.stages) + 2), head_op, f"{last}x{last}", str(head_ch), "1"))
    return rows


def render_table(arch: Architecture) -> str:
    """The architecture as a Markdown table in the layout of the paper's Table 1."""
    header = ("stage", "operator", "input resolution", "out channels", "layers")
    rows = [header, *table_rows(arch)]
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]

    def line(r: tuple[str, ...]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(r, widths)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows[1:])])
