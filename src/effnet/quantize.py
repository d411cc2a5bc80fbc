"""Static INT8 through ONNX Runtime: calibrate on the user's images, keep what breaks in fp32.

    model = effnet.from_pretrained("runs/fm/model")
    calib = read_images(model, "fashion-mnist", 500)               # the model's own eval transform
    check = read_images(model, "fashion-mnist", 1000, skip=500)    # held out from calibration
    report = quantize(model, calib, check, "fm.int8.onnx")

The file is QDQ with per-channel int8 weights and uint8 activations (``effnet.qdq``).
EfficientNet quantizes badly in places (depthwise convs, SiLU, the SE gate), so each choice
is measured on the held-out ``check`` images, one after the other:

1. the calibration method (MinMax, entropy, percentile), every op type quantized: the best
   top-1 agreement with fp32;
2. the op types quantized: all that ORT can, or only Conv/Gemm (SiLU, SE gate and adds stay
   fp32 between int8 convs): the faster of those within ``AGREEMENT_SLACK`` of the best
   agreement (on 1,000 images one standard error of a 99% agreement is 0.3 points);
3. a per-layer sensitivity sweep: each Conv/Gemm quantized alone, ranked by the logits'
   error; the K worst are left in fp32, K the smallest of ``KEEP_FP32`` that reaches
   ``target_agreement`` (else the one with the best agreement).

Weights use 7 bits (``reduce_range``) on x86 CPUs without VNNI, as ORT advises for its
U8S8 kernels there (``effnet.qdq.needs_reduce_range``); ``reduce_range`` overrides it.

The score is the top-1 agreement with the fp32 model: it needs no labels and bounds the
accuracy drop on the same images, |top1(int8) - top1(fp32)| <= 1 - agreement.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from effnet.data import BatchTransform, DataSpec, load_splits
from effnet.errors import EffnetError
from effnet.images import Preprocess, load_batch
from effnet.io import atomic_write_with
from effnet.qdq import (
    OP_CHOICES,
    Quantizer,
    copy_metadata,
    median_ms,
    needs_reduce_range,
    onnx_logits,
)

METHODS = ("minmax", "entropy", "percentile")
KEEP_FP32 = (0, 1, 2, 4, 8, 16)
AGREEMENT_SLACK = 0.005
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


@dataclass(frozen=True)
class Images:
    """Preprocessed images (float N, C, H, W) and their labels where the data has them."""

    tensor: torch.Tensor
    labels: torch.Tensor | None
    source: str


@dataclass(frozen=True)
class Score:
    """An ONNX model's logits against the fp32 model's on the check images."""

    agreement: float  # fraction of images with the fp32 model's top-1 class
    top1: float | None  # accuracy in %, where the images have labels
    rel_mse: float  # mean squared logit error / variance of the fp32 logits
    ms: float | None = None  # median latency, batch of up to 16 check images, one thread


@dataclass(frozen=True)
class QuantReport:
    """What ``quantize`` chose and every measurement behind the choice."""

    path: str
    method: str
    ops: str
    kept_fp32: list[str]
    calib_images: int
    check_images: int
    fp32: Score
    int8: Score
    methods: dict[str, Score] = field(default_factory=dict)
    failed_methods: dict[str, str] = field(default_factory=dict)
    op_choices: dict[str, Score] = field(default_factory=dict)
    sensitivity: list[tuple[str, float]] = field(default_factory=list)  # worst first
    keep_sweep: dict[int, Score] = field(default_factory=dict)
    reduce_range: bool = False  # 7-bit weights (x86 without VNNI)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def _files(folder: Path) -> list[str]:
    """Image files under ``folder`` (any depth) in a seeded shuffle, so the first N of a
    class-per-folder tree are not all of the first class."""
    files = sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return [files[i] for i in np.random.default_rng(0).permutation(len(files))]


def read_images(
    model: nn.Module, data: str | Path, count: int, skip: int = 0, split: str = "train"
) -> Images:
    """``count`` images of ``data`` after the first ``skip`` (a seeded shuffle), preprocessed
    as the model's evaluation does.

    ``data``: "fashion-mnist" or an ImageFolder root (``split``, with the transform of
    ``effnet eval``), or a folder of image files (unlabelled, the transform of ``predict``).
    """
    if count < 1:
        raise EffnetError(f"need at least 1 calibration image, got {count}")
    if split not in ("train", "minival", "test"):
        raise EffnetError(f"split must be train, minival or test, got {split!r}")
    folder = Path(data).expanduser()
    if str(data) != "fashion-mnist" and folder.is_dir() and not (folder / "train").is_dir():
        return _loose_images(model, folder, count, skip)

    arch = model.arch
    splits = load_splits(DataSpec(source=str(data), minival=0, workers=0), arch.resolution)
    in_chans = getattr(model, "in_chans", 3)
    if splits.in_chans != in_chans:
        raise EffnetError(f"{data}: {splits.in_chans}-channel images; the model takes {in_chans}")
    if splits.num_classes != model.num_classes:
        raise EffnetError(
            f"{data}: {splits.num_classes} classes; the model has {model.num_classes}"
        )
    dataset = getattr(splits, split)
    if skip + count > len(dataset):
        raise EffnetError(f"{data}: {len(dataset)} {split} images, {skip + count} needed")
    order = np.random.default_rng(0).permutation(len(dataset))[skip : skip + count]
    transform = BatchTransform(
        arch.resolution, arch.mean, arch.std, train=False, crop_pct=arch.crop_pct,
        interpolation=arch.interpolation,
    )  # fmt: skip
    items = [dataset[int(i)] for i in order]
    with torch.no_grad():
        x = torch.cat([transform(img[None]) for img, _ in items])
    return Images(x, torch.tensor([label for _, label in items]), str(data))


def _loose_images(model: nn.Module, folder: Path, count: int, skip: int) -> Images:

    files = _files(folder)
    if not files:
        raise EffnetError(f"{folder}: no calibration images (no image files, no train/ folder)")
    picked = files[skip : skip + count] or files[:count]  # too few to hold out: reuse
    batch = load_batch(picked, Preprocess.of(model))
    if not batch.paths:
        raise EffnetError(f"{folder}: no calibration image could be read ({batch.failed[0][1]})")
    return Images(batch.tensor, None, str(folder))


def score(logits: np.ndarray, reference: np.ndarray, labels: torch.Tensor | None) -> Score:
    pred = logits.argmax(1)
    agreement = float((pred == reference.argmax(1)).mean())
    top1 = None if labels is None else float((pred == labels.numpy()).mean() * 100)
    rel = float(((logits - reference) ** 2).mean() / max(reference.var(), 1e-12))
    return Score(agreement, top1, rel)


def quantize(
    model: nn.Module,
    calib: Images,
    check: Images,
    out: str | Path,
    *,
    method: str | None = None,
    ops: str | None = None,
    keep_fp32: int | None = None,
    target_agreement: float = 0.99,
    sweep_images: int = 256,
    reduce_range: bool | None = None,
) -> QuantReport:
    """Quantize ``model`` to ``out`` (INT8 QDQ), choosing by measurement on ``check`` what
    is not given: calibration ``method``, quantized ``ops`` and layers kept in fp32.
    ``reduce_range`` None: 7-bit weights where this CPU is x86 without VNNI."""

    if method is not None and method not in METHODS:
        raise EffnetError(f"calibration method must be one of {METHODS}, got {method!r}")
    if ops is not None and ops not in OP_CHOICES:
        raise EffnetError(f"ops must be one of {tuple(OP_CHOICES)}, got {ops!r}")
    if keep_fp32 is not None and keep_fp32 < 0:
        raise EffnetError(f"keep_fp32 must be >= 0 layers, got {keep_fp32}")
    with tempfile.TemporaryDirectory(prefix="effnet-quant-") as tmp:
        work = Path(tmp)
        reduce = needs_reduce_range() if reduce_range is None else reduce_range
        q = Quantizer(model.eval(), calib.tensor, work, reduce)
        ref = onnx_logits(q.fp32, check.tensor)
        timed = check.tensor[:16]

        def measure(path: Path, n: int | None = None, timing: bool = True) -> Score:
            labels = None if check.labels is None else check.labels[:n]
            s = score(onnx_logits(path, check.tensor[:n]), ref[:n], labels)
            return Score(s.agreement, s.top1, s.rel_mse, median_ms(path, timed) if timing else None)

        fp32 = measure(q.fp32)
        methods, failed = {}, {}
        for m in (method,) if method else METHODS:
            try:
                methods[m] = measure(q.quantize(work / f"m.{m}.onnx", m), timing=False)
            except ValueError as e:  # ORT's histograms fail on a tensor that never varies
                failed[m] = str(e).splitlines()[0] if str(e) else type(e).__name__
        if not methods:
            raise EffnetError(f"calibration failed: {failed}")
        method = method or max(methods, key=lambda m: (methods[m].agreement, -methods[m].rel_mse))
        op_choices = {o: measure(q.quantize(work / f"o.{o}.onnx", method, o)) for o in OP_CHOICES}
        ops = ops or _fastest_close_to_best(op_choices)
        sensitivity = [] if keep_fp32 == 0 else _sensitivity(q, method, ops, measure, sweep_images)
        worst = [name for name, _ in sensitivity]
        keeps = (keep_fp32,) if keep_fp32 is not None else KEEP_FP32
        sweep = {
            k: measure(q.quantize(work / f"k{k}.onnx", method, ops, exclude=worst[:k]))
            for k in sorted({min(k, len(worst)) for k in keeps})
        }
        good = [k for k in sweep if sweep[k].agreement >= target_agreement]
        k = min(good) if good else max(sweep, key=lambda k: (sweep[k].agreement, -k))
        final = work / f"k{k}.onnx"
        meta = {"method": method, "ops": ops, "kept_fp32": worst[:k], "format": "QDQ",
                "reduce_range": reduce}  # fmt: skip
        copy_metadata(q.fp32, final, {"effnet.quantization": json.dumps(meta)})
        data = final.read_bytes()
    out = Path(out)
    atomic_write_with(out, lambda t: Path(t).write_bytes(data))
    return QuantReport(
        str(out), method, ops, worst[:k], len(calib.tensor), len(check.tensor), fp32, sweep[k],
        methods, failed, op_choices, sensitivity, sweep, reduce,
    )  # fmt: skip


def _fastest_close_to_best(scores: dict[str, Score]) -> str:
    """Agreement differences within the slack are noise; there latency decides (the Q/DQ
    pairs around fp32 ops can make an int8 model slower than the fp32 one)."""
    best = max(s.agreement for s in scores.values())
    close = [k for k, s in scores.items() if s.agreement >= best - AGREEMENT_SLACK]
    return min(close, key=lambda k: scores[k].ms or 0.0)


def _sensitivity(q: Quantizer, method: str, ops: str, measure: Any, n: int) -> list:
    """Each Conv/Gemm quantized alone (its input and weights), worst logit error first."""
    errors = []
    for i, name in enumerate(q.layers):
        path = q.quantize(q.workdir / f"s{i}.onnx", method, ops, only=[name])
        errors.append((name, measure(path, n, timing=False).rel_mse))
    return sorted(errors, key=lambda e: -e[1])
