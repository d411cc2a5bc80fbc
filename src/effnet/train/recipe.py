"""A training recipe as data: every knob of a run in one frozen, JSON-able dataclass.

``RECIPES["paper"]`` is section 5.2 of Tan & Le (2019) and the official TPU code;
``RECIPES["cpu"]`` is tuned for runs of minutes to an hour on a few CPU cores, where the
paper's 5 warm-up epochs and slow staircase decay never get going.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

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
    randaugment: tuple[int, int] | None = (2, 9)  # (ops, magnitude); None = off
    random_erasing: float = 0.0  # probability per image
    hflip: bool = True
    crop_padding: float = 0.125  # random crop after padding by this fraction of the size
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

    def __post_init__(self) -> None:
        validate(self)

    def replace(self, **changes: Any) -> Recipe:
        return dataclasses.replace(self, **changes)

    KIND: ClassVar[str] = "recipe"  # JSON in and out: effnet.record.Record

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        d = checked_fields(cls, data, "recipe")
        if d.get("randaugment") is not None:
            d["randaugment"] = tuple(d["randaugment"])
        return construct(cls, d, "recipe")


def validate(r: Recipe) -> None:
    for f in dataclasses.fields(r):  # switches must be true/false, numbers numbers
        v, default = getattr(r, f.name), f.default
        if isinstance(default, bool) and not isinstance(v, bool):
            raise EffnetError(f"recipe {f.name} must be true or false, got {v!r}")
        if isinstance(default, int | float) and not isinstance(default, bool):
            if v is None and "None" in str(f.type):
                continue
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise EffnetError(f"recipe {f.name} must be a number, got {v!r}")
    if r.optimizer not in OPTIMIZERS:
        raise EffnetError(f"recipe optimizer must be one of {OPTIMIZERS}, got {r.optimizer!r}")
    if r.schedule not in SCHEDULES:
        raise EffnetError(f"recipe schedule must be one of {SCHEDULES}, got {r.schedule!r}")
    if r.amp not in (None, "bf16"):
        raise EffnetError(f"recipe amp must be 'bf16' or null, got {r.amp!r}")
    if r.epochs <= 0 or r.batch_size < 1 or r.lr <= 0:
        raise EffnetError("recipe epochs, batch_size and lr must be positive")
    if r.ema_decay is not None and not 0 <= r.ema_decay < 1:
        raise EffnetError(f"recipe ema_decay must be in [0, 1), got {r.ema_decay}")
    if r.log_every < 1 or r.checkpoint_every < 0 or r.eval_every < 1:
        raise EffnetError("recipe log_every and eval_every must be >= 1, checkpoint_every >= 0")


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
    """A recipe by name (``paper``, ``cpu``), from a JSON file, or as given."""
    if isinstance(name_or_path, Recipe):
        return name_or_path
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
