"""A training recipe as data: every knob of a run in one frozen, JSON-able dataclass.

``RECIPES["paper"]`` is section 5.2 of Tan & Le (2019) and the official TPU code;
``RECIPES["cpu"]`` is tuned for runs of minutes to an hour on a few CPU cores, where the
paper's 5 warm-up epochs and slow staircase decay never get going.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from effnet.data.augmentation import CROPS, describe_augmentation
from effnet.errors import EffnetError
from effnet.record import Record, checked_fields, construct

OPTIMIZERS = ("rmsprop_tf", "adamw", "sgd")
SCHEDULES = ("step", "cosine")


@dataclass(frozen=True)
class Recipe(Record):
    """How to train. Learning rates are per 256 images and scale linearly with the batch."""

    epochs: float = 350  # the paper trains ~350 epochs
    batch_size: int = 256  # global batch (split over DDP ranks)
    lr: float = 0.016  # per 256 images (paper: 0.016, i.e. 0.256 at batch 4096)
    warmup_epochs: float = 5  # linear warm-up from 0
    schedule: str = "step"  # "step": x decay_rate every decay_epochs (staircase); "cosine"
    decay_rate: float = 0.97
    decay_epochs: float = 2.4
    min_lr_ratio: float = 0.0  # cosine floor, as a fraction of the peak
    optimizer: str = "rmsprop_tf"  # "rmsprop_tf" | "adamw" | "sgd" (nesterov)
    momentum: float = 0.9  # RMSProp/SGD momentum; AdamW beta1
    rmsprop_decay: float = 0.9  # RMSProp's rho; AdamW beta2 is 0.999
    opt_eps: float = 1e-3  # RMSProp: inside the square root, as in TensorFlow
    weight_decay: float = 1e-5  # not applied to BN parameters or biases
    label_smoothing: float = 0.1
    drop_path: float | None = 0.2  # stochastic depth max rate; None = the model's
    dropout: float | None = None  # before the classifier; None = the model's (0.2 for B0)
    bn_momentum: float | None = None  # PyTorch convention; None = the model's (0.01 = TF 0.99)
    ema: bool = True  # keep an exponential moving average of weights (and BN statistics)
    ema_decay: float | None = 0.9999  # None = adapted to the run's length (10 / total steps)
    # the weights the test number (and the exported model) comes from: "final" (the EMA when
    # ema is on, else the raw weights), "raw" (the final raw weights), or "best" (the epoch
    # best on minival, raw or EMA: a choice, so it needs a minival of >= 2,000 images)
    report_weights: str = "final"
    # augmentation (effnet.data.augment), the crop drawn in the source's pixels and then
    # resized to the model's side by the resampler eval uses too
    crop: str = "resized"  # "resized" (scale, ratio) | "pad" (crop_padding) | "none"
    crop_scale: tuple[float, float] = (0.08, 1.0)  # "resized": area range, of the image's
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # "resized": aspect-ratio range
    crop_padding: float = 0.125  # "pad": zero-pad by this fraction of the side, crop back
    hflip: bool = True
    randaugment: tuple[int, int] | None = (2, 9)  # (ops, magnitude); None = off
    random_erasing: float = 0.0  # probability per image
    # progressive resizing (EfficientNetV2's progressive learning, image size only): training
    # in this many equal stages of progress, the image side growing linearly from
    # resize_start x the model's resolution in the first stage to the full size in the last
    resize_stages: int = 1  # 1 = off: every step at the model's resolution
    resize_start: float = 0.6
    grad_clip: float | None = None  # max global grad norm
    channels_last: bool = True
    amp: str | None = None  # "bf16" autocast; opt-in (emulated and slow on AVX2-only CPUs)
    compile: bool = False  # torch.compile the training model
    sync_bn: bool = False  # SyncBatchNorm under DDP
    seed: int = 0
    deterministic: bool = False  # torch.use_deterministic_algorithms; bit-exact resume
    max_time_s: float | None = None  # stop training after this many seconds (then evaluate)
    log_every: int = 50  # steps between metrics.jsonl step records
    checkpoint_every: int = 0  # steps between mid-epoch checkpoints; 0 = at epoch end only
    zero_init_head: bool = False  # zero classifier weights at the start (short runs, few classes)
    zero_init_last: bool = False  # residual blocks start as identities (last BN scale 0)
    eval_every: int = 1  # epochs between minival evaluations
    eval_batch_size: int = 256
    # fine-tuning from init weights (effnet.train.finetune); each needs init weights
    freeze_epochs: float = 0  # backbone (all but the classifier) frozen, in eval mode, this long
    backbone_lr_mult: float = 1.0  # the backbone's learning rate as a multiple of the head's
    freeze_bn: bool = False  # batch norm statistics and affine frozen for the whole run

    def __post_init__(self) -> None:
        for key in _PAIRS:  # from JSON overrides (a study's, --set)
            if isinstance(getattr(self, key), list):
                object.__setattr__(self, key, tuple(getattr(self, key)))
        validate(self)

    def replace(self, **changes: Any) -> Recipe:
        return dataclasses.replace(self, **changes)

    KIND: ClassVar[str] = "recipe"  # JSON in and out: effnet.record.Record

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        d = checked_fields(cls, data, "recipe")
        for key in _PAIRS:
            if isinstance(d.get(key), list):
                d[key] = tuple(d[key])
        return construct(cls, d, "recipe")

    def augment_args(self) -> dict[str, Any]:
        """The train augmentation as ``effnet.data.BatchTransform`` arguments."""
        keys = ("crop", "crop_scale", "crop_ratio", "crop_padding", "hflip", "randaugment",
                "random_erasing")  # fmt: skip
        return {k: getattr(self, k) for k in keys}

    def augmentation(self) -> str:
        """The train augmentation in one line (reports print it for every arm)."""
        return describe_augmentation(self.crop, self.crop_scale, self.crop_ratio,
                                     self.crop_padding, self.hflip, self.randaugment,
                                     self.random_erasing)  # fmt: skip


_PAIRS = ("randaugment", "crop_scale", "crop_ratio")  # tuples, lists in JSON
REPORT_WEIGHTS = ("final", "raw", "best")
MIN_MINIVAL_TO_CHOOSE = 2000  # report_weights "best" picks among epochs on this many images
# what runs made before 2026-12-08 did, for the fields they did not save (they resume so)
BEFORE_2026_12_08 = {"crop": "auto", "report_weights": "best"}


# (low, high, whether low is allowed): ranges of the numeric fields; None = unbounded
_RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    "epochs": (0, None, False), "batch_size": (2, None, True), "lr": (0, None, False),
    "warmup_epochs": (0, None, True), "decay_rate": (0, 1, False),
    "decay_epochs": (0, None, False), "min_lr_ratio": (0, 1, True), "momentum": (0, 1, True),
    "rmsprop_decay": (0, 1, True), "opt_eps": (0, None, False), "weight_decay": (0, None, True),
    "label_smoothing": (0, 0.999, True), "drop_path": (0, 0.999, True),
    "dropout": (0, 0.999, True), "bn_momentum": (0, 1, True), "ema_decay": (0, 0.999999, True),
    "random_erasing": (0, 1, True), "crop_padding": (0, 1, True), "grad_clip": (0, None, False),
    "seed": (0, 2**32 - 1, True), "max_time_s": (0, None, False), "log_every": (1, None, True),
    "checkpoint_every": (0, None, True), "eval_every": (1, None, True),
    "eval_batch_size": (1, None, True), "freeze_epochs": (0, None, True),
    "backbone_lr_mult": (0, None, True), "resize_stages": (1, 16, True),
    "resize_start": (0, 1, False),
}  # fmt: skip
_WHY = {"batch_size": " (batch norm needs more than one image per batch)"}


def _check_number(name: str, v: Any, kind: str) -> None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise EffnetError(f"recipe {name} must be a number, got {v!r}")
    if kind == "int" and not isinstance(v, int):
        raise EffnetError(f"recipe {name} must be a whole number, got {v!r}")
    if not math.isfinite(v):
        raise EffnetError(f"recipe {name} must be a finite number, got {v!r}")
    low, high, closed = _RANGES.get(name, (None, None, True))
    if low is not None and (v < low or (v == low and not closed)):
        op = ">=" if closed else ">"
        raise EffnetError(f"recipe {name} must be {op} {low:g}, got {v!r}{_WHY.get(name, '')}")
    if high is not None and v > high:
        raise EffnetError(f"recipe {name} must be <= {high:g}, got {v!r}")


def validate(r: Recipe) -> None:
    """Types first (switches true/false, numbers finite numbers), then each field's range."""
    for f in dataclasses.fields(r):
        v, kind = getattr(r, f.name), str(f.type)
        if kind == "bool" and not isinstance(v, bool):
            raise EffnetError(f"recipe {f.name} must be true or false, got {v!r}")
        if v is None and kind.endswith("| None"):
            continue
        if kind.startswith(("int", "float")):
            _check_number(f.name, v, kind.split()[0])
    for name, known in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES)):
        if not isinstance(getattr(r, name), str) or getattr(r, name) not in known:
            raise EffnetError(f"recipe {name} must be one of {known}, got {getattr(r, name)!r}")
    if r.report_weights not in REPORT_WEIGHTS:
        raise EffnetError(
            f"recipe report_weights must be one of {REPORT_WEIGHTS}, got {r.report_weights!r}"
        )
    if not isinstance(r.crop, str) or r.crop not in CROPS:
        raise EffnetError(f"recipe crop must be one of {CROPS[:3]}, got {r.crop!r}")
    for key, low, high in (("crop_scale", 0.0, 1.0), ("crop_ratio", 0.0, math.inf)):
        v = getattr(r, key)
        ok = (
            isinstance(v, tuple)
            and len(v) == 2
            and all(
                isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
                for x in v
            )
        )
        if not ok or not (low < v[0] <= v[1] <= high):
            bound = f"<= {high:g}" if math.isfinite(high) else "finite"
            raise EffnetError(
                f"recipe {key} must be [low, high] with 0 < low <= high {bound}, got {v!r}"
            )
    if r.amp is not None and r.amp != "bf16":
        raise EffnetError(f"recipe amp must be 'bf16' or null, got {r.amp!r}")
    ra = r.randaugment
    if ra is not None and not (
        isinstance(ra, tuple)
        and len(ra) == 2
        and all(isinstance(x, int | float) and not isinstance(x, bool) for x in ra)
        and isinstance(ra[0], int)
        and 1 <= ra[0] <= 16
        and 0 <= ra[1] <= 10
    ):
        raise EffnetError(
            f"recipe randaugment must be [ops 1-16, magnitude 0-10] or null, got {ra!r}"
        )


def paper() -> Recipe:
    """Section 5.2: RMSProp-TF, 0.016/256 with 5 warm-up epochs, x0.97 every 2.4 epochs."""
    return Recipe()


def cpu() -> Recipe:
    """Short CPU runs: AdamW + cosine, 1 warm-up epoch, EMA decay adapted to the run length.

    Regularisation is light because a run of a few epochs underfits: on Fashion-MNIST at
    32 px, 200 steps reached 78% minival top-1 without augmentation, 66% with pad-and-crop
    plus flip, 75% with label smoothing, dropout and stochastic depth (docs/training.md).
    BN statistics use momentum 0.05 (not TF's 0.01) so they settle in a few hundred steps.
    """
    return Recipe(
        epochs=10,
        batch_size=128,
        lr=0.008,
        warmup_epochs=1,
        schedule="cosine",
        optimizer="adamw",
        weight_decay=0.05,
        label_smoothing=0.1,
        drop_path=0.05,
        ema_decay=None,
        randaugment=None,
        random_erasing=0.0,
        crop="pad",  # with no padding: flip only, the same for every resolution
        crop_padding=0.0,
        bn_momentum=0.05,
        checkpoint_every=200,
        # the official uniform(1/sqrt(classes)) init starts 10-class runs at loss ~3.9 (not
        # ln 10 = 2.3); from zero, a 3-epoch quick-study run reached 71.9% instead of 18.9%
        zero_init_head=True,
        # residual blocks start as identities: in a 2-epoch study run B0 at 4x depth reached
        # 77.0% test top-1 with it and 23.8% without (deep stacks learn slowly otherwise)
        zero_init_last=True,
    )


RECIPES = {"paper": paper(), "cpu": cpu()}


def resolve(name_or_path: str | Recipe) -> Recipe:
    """A recipe by name (``paper``, ``cpu``, or ``auto``: the paper's where a GPU is there,
    else the CPU recipe), from a JSON file, or as given."""
    if isinstance(name_or_path, Recipe):
        return name_or_path
    if name_or_path == "auto":
        import torch  # the recipe data needs no torch; only this choice does

        name_or_path = "paper" if torch.cuda.is_available() else "cpu"
    if name_or_path in RECIPES:
        return RECIPES[name_or_path]
    if str(name_or_path).endswith(".json") or Path(name_or_path).is_file():
        return Recipe.load(name_or_path)
    raise EffnetError(f"unknown recipe {name_or_path!r} (known: {', '.join(RECIPES)}; or a .json)")


def apply_overrides(recipe: Recipe, pairs: list[str]) -> Recipe:
    """``key=value`` strings (values parsed as JSON, else kept as strings) applied to a recipe."""
    fields = {f.name for f in dataclasses.fields(Recipe)}
    changes: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in fields:
            raise EffnetError(f"--set {pair!r}: expected key=value with key a recipe field")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        if isinstance(value, list):
            value = tuple(value)
        changes[key] = value
    return recipe.replace(**changes)
