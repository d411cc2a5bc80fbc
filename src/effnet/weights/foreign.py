"""timm, torchvision and efficientnet_pytorch state dicts mapped onto our models.

Key names: our blocks use timm's role names, so a timm checkpoint maps one to one,
except that timm builds EfficientNet's first stage from ``DepthwiseSeparableConv``
(conv_dw, bn1, se, conv_pw, bn2) where ours is an MBConv1 (conv_dw, bn2, se, conv_pwl,
bn3): same tensors, same order, other names. torchvision numbers its layers
(``features.S.J.block.K.I``); the position of a part inside a block says its role.

Conventions a state dict does not carry (its architecture does): the batch-norm epsilon
and the padding. timm's ``efficientnet_b*`` were trained in PyTorch (eps 1e-5,
symmetric padding); timm's ``tf_efficientnet_*`` are TensorFlow ports (eps 1e-3, "same"
padding: build ours with ``padding="same"``, i.e. the ``tf_efficientnet_*`` names);
torchvision's b0-b4 use eps 1e-5, its b5-b7 (TensorFlow ports) eps 1e-3, both with
symmetric padding; ``efficientnet_pytorch`` checkpoints (TensorFlow ports) eps 1e-3 and
"same" padding (key map and details in ``effnet.weights.efficientnet_pytorch``). Loading
sets the model's epsilon to the source's (it changes no shapes, so nothing is rebuilt)
and records it in ``model.arch``, so a later ``save_pretrained`` keeps it. Padding
changes the modules, so it is the caller's choice of architecture; ours never guesses it
(and refuses a TensorFlow port whose source says so, e.g. efficientnet_pytorch, in a
symmetric-padding model).
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from effnet.arch import Block, Norm, Padding
from effnet.errors import EffnetError
from effnet.registry import ARCHITECTURES
from effnet.weights.efficientnet_pytorch import is_efficientnet_pytorch, map_efficientnet_pytorch

log = logging.getLogger(__name__)

Source = Literal["auto", "effnet", "timm", "torchvision", "efficientnet_pytorch"]
SOURCES = ("auto", "effnet", "timm", "torchvision", "efficientnet_pytorch")

PYTORCH_EPS, TF_EPS = 1e-5, 1e-3
# torchvision's b5, b6, b7 (ported from TensorFlow) use eps 1e-3; their head widths:
TORCHVISION_TF_HEAD_WIDTHS = {2048, 2304, 2560}

Mapped = dict[str, tuple[str, torch.Tensor]]  # our name -> (checkpoint name, tensor)


@dataclass(frozen=True)
class Loaded:
    """What a load did: where the weights came from, how many tensors, the epsilon used."""

    source: str
    tensors: int
    eps: float


# -- source detection -----------------------------------------------------------------------
def detect_source(state_dict: dict[str, torch.Tensor], model: nn.Module) -> str:
    """'torchvision' (features.*), 'efficientnet_pytorch' (_conv_stem), 'timm', 'effnet'.

    timm and ours share names; timm's first-stage depthwise-separable blocks tell them apart.
    """
    if "features.0.0.weight" in state_dict:
        return "torchvision"
    if is_efficientnet_pytorch(state_dict):
        return "efficientnet_pytorch"
    if "conv_stem.weight" in state_dict:
        return "timm" if _timm_ds_blocks(state_dict, model.state_dict()) else "effnet"
    first = ", ".join(list(state_dict)[:3])
    raise EffnetError(
        "unrecognised checkpoint: no 'conv_stem.weight' (effnet/timm), 'features.0.0.weight' "
        f"(torchvision) or '_conv_stem.weight' (efficientnet_pytorch) tensor; it starts with "
        f"{first or 'nothing'}"
    )


def _timm_ds_blocks(sd: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> set[str]:
    """Block prefixes that are timm DepthwiseSeparableConv in ``sd`` but MBConv1 in ours."""
    out = set()
    for key in sd:
        m = re.match(r"(blocks\.\d+\.\d+\.)conv_pw\.weight$", key)
        if not m:
            continue
        p = m.group(1)
        theirs_ds = p + "conv_pwl.weight" not in sd
        ours_mb1 = p + "conv_pwl.weight" in target and p + "conv_pw.weight" not in target
        if theirs_ds and ours_mb1:
            out.add(p)
    return out


# -- key maps ------------------------------------------------------------------------------
TIMM_DS_RENAMES = {"conv_pw": "conv_pwl", "bn1": "bn2", "bn2": "bn3"}


def map_timm(sd: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> Mapped:
    """timm names are ours, except inside first-stage depthwise-separable blocks."""
    ds = _timm_ds_blocks(sd, target)
    out: Mapped = {}
    for key, t in sd.items():
        m = re.match(r"(blocks\.\d+\.\d+\.)([a-z_0-9]+)(\..+)$", key)
        if m and m.group(1) in ds and m.group(2) in TIMM_DS_RENAMES:
            out[m.group(1) + TIMM_DS_RENAMES[m.group(2)] + m.group(3)] = (key, t)
        else:
            out[key] = (key, t)
    return out


def timm_names(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state dict in timm's names (the inverse of :func:`map_timm`): an MBConv without
    expansion (conv_dw, bn2, se, conv_pwl, bn3) is timm's DepthwiseSeparableConv (conv_dw,
    bn1, se, conv_pw, bn2); every other name is already timm's."""
    inverse = {v: k for k, v in TIMM_DS_RENAMES.items()}
    ds = set()
    for k in sd:
        m = re.match(r"(blocks\.\d+\.\d+\.)conv_pwl\.weight$", k)
        if m and m.group(1) + "conv_pw.weight" not in sd and m.group(1) + "conv_dw.weight" in sd:
            ds.add(m.group(1))
    out = {}
    for key, t in sd.items():
        m = re.match(r"(blocks\.\d+\.\d+\.)([a-z_0-9]+)(\..+)$", key)
        if m and m.group(1) in ds and m.group(2) in inverse:
            out[m.group(1) + inverse[m.group(2)] + m.group(3)] = t
        else:
            out[key] = t
    return out


def _torchvision_roles(parts: list[int], se_part: int | None) -> dict[int, str]:
    """Role of each numbered part of a torchvision MBConv: [pw], dw, [se], pwl."""
    convs = [p for p in parts if p != se_part]
    names = ["pw", "dw", "pwl"] if len(convs) == 3 else ["dw", "pwl"]
    roles = dict(zip(convs, names))
    if se_part is not None:
        roles[se_part] = "se"
    return roles


TV_CONV = {
    **{"pw": ("conv_pw", "bn1"), "dw": ("conv_dw", "bn2"), "pwl": ("conv_pwl", "bn3")},
    **{"conv": ("conv", "bn1"), "exp": ("conv_exp", "bn1"), "fpwl": ("conv_pwl", "bn2")},
}  # MBConv parts; Fused-MBConv parts


def _torchvision_fused(sd: dict[str, torch.Tensor], b: tuple[int, int], parts: set[int]) -> bool:
    """A Fused-MBConv (EfficientNetV2): no SE, and its first conv is a full (not depthwise)
    3x3; its parts are [expand 3x3], project 1x1, or one 3x3 conv when expand is 1."""
    first = sd.get(f"features.{b[0]}.{b[1]}.block.0.0.weight")
    return first is not None and first.ndim == 4 and first.shape[1] > 1 and len(parts) <= 2


TV_SE = {"fc1": "se.conv_reduce", "fc2": "se.conv_expand"}


def map_torchvision(sd: dict[str, torch.Tensor]) -> Mapped:
    """features.0 -> stem, features.1..N-1 -> blocks, features.N -> head, classifier.1."""
    stages = {int(k.split(".")[1]) for k in sd if k.startswith("features.")}
    if not stages:
        return {k: (k, t) for k, t in sd.items()}
    last = max(stages)
    block_re = re.compile(r"features\.(\d+)\.(\d+)\.block\.(\d+)\.(.+)$")
    parts: dict[tuple[int, int], set[int]] = defaultdict(set)
    se_part: dict[tuple[int, int], int] = {}
    for key in sd:
        m = block_re.match(key)
        if m:
            b = (int(m.group(1)), int(m.group(2)))
            parts[b].add(int(m.group(3)))
            if m.group(4).startswith("fc1."):
                se_part[b] = int(m.group(3))
    roles = {
        b: ({0: "conv"} if len(p) == 1 else {0: "exp", 1: "fpwl"})
        if b not in se_part and _torchvision_fused(sd, b, p)
        else _torchvision_roles(sorted(p), se_part.get(b))
        for b, p in parts.items()
    }
    out: Mapped = {}
    for key, t in sd.items():
        out[_torchvision_name(key, last, block_re, roles)] = (key, t)
    return out


def _torchvision_name(
    key: str, last: int, block_re: re.Pattern, roles: dict[tuple[int, int], dict[int, str]]
) -> str:
    head = {"features.0.0.": "conv_stem.", "features.0.1.": "bn1.",
            f"features.{last}.0.": "conv_head.", f"features.{last}.1.": "bn2.",
            "classifier.1.": "classifier."}  # fmt: skip
    for prefix, ours in head.items():
        if key.startswith(prefix):
            return ours + key[len(prefix) :]
    m = block_re.match(key)
    if not m:
        return key  # unknown: reported as unexpected
    s, j, part, rest = int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4)
    role = roles[(s, j)][part]
    prefix = f"blocks.{s - 1}.{j}."
    if role == "se":
        layer, _, tail = rest.partition(".")
        return prefix + TV_SE.get(layer, layer) + "." + tail
    conv_name, bn_name = TV_CONV[role]
    index, _, tail = rest.partition(".")
    return prefix + {"0": conv_name, "1": bn_name}.get(index, index) + "." + tail


# -- conventions -----------------------------------------------------------------------------
def source_eps(source: str, model: nn.Module, sd: dict[str, torch.Tensor]) -> float | None:
    """The batch-norm epsilon the checkpoint was trained with (None: keep the model's)."""
    if source == "timm":
        return TF_EPS if model.arch.padding is Padding.SAME else PYTORCH_EPS
    if source == "efficientnet_pytorch":
        return TF_EPS
    if source == "torchvision":
        if any(st.block is Block.FUSED_MBCONV for st in model.arch.stages):
            return TF_EPS  # torchvision's EfficientNetV2 uses 1e-3 throughout
        heads = [k for k in sd if re.match(r"features\.\d+\.0\.weight$", k)]
        last = max(heads, key=lambda k: int(k.split(".")[1]), default=None)
        width = sd[last].shape[0] if last else 0
        return TF_EPS if width in TORCHVISION_TF_HEAD_WIDTHS else PYTORCH_EPS
    return None


def set_eps(model: nn.Module, eps: float) -> None:
    """Every batch norm's epsilon, and the architecture record of it."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eps = eps
    arch = getattr(model, "arch", None)
    if arch is not None and arch.norm.eps != eps:
        model.arch = arch.replace(norm=Norm(eps=eps, momentum=arch.norm.momentum))


# -- checking and loading ---------------------------------------------------------------------
def adapt_stem(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Stem weights for ``in_chans`` inputs, as timm adapts them (``adapt_input_conv``):
    summed over the checkpoint's channels for one channel (a grey image then gets exactly
    the response of the same image repeated as RGB); otherwise the channels repeated
    cyclically to ``in_chans`` and rescaled by ``C / in_chans`` (an RGB image repeated k
    times, for 3k channels, gets the RGB response). Better than re-initialising the first
    layer of a trained network.
    """
    c = weight.shape[1]
    if in_chans == 1:
        return weight.sum(1, keepdim=True)
    repeats = -(-in_chans // c)
    return weight.repeat(1, repeats, 1, 1)[:, :in_chans] * c / in_chans


def _shape(t: torch.Tensor) -> str:
    return "x".join(map(str, t.shape)) or "scalar"


def _position(key: str) -> list[int]:
    """Where a tensor sits by its numbered modules (blocks.2 before blocks.10)."""
    return [int(p) for p in key.split(".") if p.isdigit()]


def check(mapped: Mapped, target: dict[str, torch.Tensor], name: str, source: str) -> None:
    """Raise naming the first tensor that does not fit, in the model's order.

    Missing or misshapen tensors are found walking the model's state dict; tensors the
    model has no place for come after, the first by block position (blocks.2 before
    blocks.10; a safetensors file does not keep the order it was written in).
    """
    for ours, want in target.items():
        if ours not in mapped:
            if ours.endswith("num_batches_tracked"):
                continue
            missing = sum(k not in mapped for k in target if not k.endswith("batches_tracked"))
            more = f" ({missing - 1} more)" if missing > 1 else ""
            raise EffnetError(f"{source} checkpoint has no tensor for {ours!r} of {name}{more}")
        theirs, t = mapped[ours]
        if t.shape != want.shape:
            hint = ""
            if ours.startswith("classifier."):
                hint = (
                    "; build the model with the checkpoint's num_classes, then reset_classifier()"
                )
            where = f"{theirs!r}" + (f" (ours: {ours!r})" if ours != theirs else "")
            raise EffnetError(
                f"{source} tensor {where} has shape {_shape(t)} but {name} expects "
                f"{_shape(want)}{hint}"
            )
    extra = sorted((theirs for ours, (theirs, _) in mapped.items() if ours not in target),
                   key=_position)  # fmt: skip
    if extra:
        more = f" ({len(extra) - 1} more)" if len(extra) > 1 else ""
        raise EffnetError(
            f"{source} tensor {extra[0]!r} has no counterpart in {name}{more}"
            " - is the checkpoint another architecture?"
        )


def load_foreign(
    model: nn.Module,
    state_dict: dict[str, torch.Tensor],
    source: Source = "auto",
    eps: float | None = None,
    head: bool = True,
) -> Loaded:
    """Load a timm, torchvision, efficientnet_pytorch or effnet state dict (in place).

    ``source="auto"`` tells them apart by key names. The model's batch-norm epsilon is set
    to the source's convention (see the module docstring) unless ``eps`` is given. Shapes
    must match exactly, except an RGB stem loaded into a model with other ``in_chans``,
    whose weights are adapted (summed for grayscale) rather than re-initialised. With
    ``head=False`` the checkpoint's classifier is ignored and the model keeps its own
    (fine-tuning for other classes).
    """
    if source not in SOURCES:
        raise EffnetError(f"unknown weights source {source!r} (known: {', '.join(SOURCES)})")
    if source == "auto":
        source = detect_source(state_dict, model)
    target = model.state_dict()
    if source == "torchvision":
        mapped = map_torchvision(state_dict)
    elif source in ("timm", "effnet"):  # ours: format 2 saves timm's names, 1 our own
        mapped = map_timm(state_dict, target)
    elif source == "efficientnet_pytorch":
        require_same_padding(model, source)
        mapped = map_efficientnet_pytorch(state_dict, target)
    stem = mapped.get("conv_stem.weight")
    want = target.get("conv_stem.weight")
    if stem is not None and want is not None and stem[1].shape != want.shape:
        w = stem[1]
        if w.shape[0] == want.shape[0] and w.shape[2:] == want.shape[2:]:
            mapped["conv_stem.weight"] = (stem[0], adapt_stem(w, want.shape[1]))
    checked = target
    if not head:
        mapped = {k: v for k, v in mapped.items() if not k.startswith("classifier.")}
        checked = {k: v for k, v in target.items() if not k.startswith("classifier.")}
    name = getattr(getattr(model, "arch", None), "name", type(model).__name__)
    check(mapped, checked, name, source)
    new = {k: mapped[k][1] if k in mapped else v for k, v in target.items()}
    model.load_state_dict(new, strict=True)
    chosen = eps if eps is not None else source_eps(source, model, state_dict)
    if chosen is not None:
        before = getattr(getattr(model, "arch", None), "norm", Norm()).eps
        set_eps(model, chosen)
        if before != chosen:
            log.info("%s weights: batch-norm eps set to %g (was %g)", source, chosen, before)
    final = chosen if chosen is not None else model.arch.norm.eps
    return Loaded(source=source, tensors=len(mapped), eps=final)


def require_same_padding(model: nn.Module, source: str) -> None:
    """TensorFlow ports only reproduce their outputs with TensorFlow's "same" padding."""
    arch = getattr(model, "arch", None)
    if arch is None or arch.padding is Padding.SAME:
        return
    fix = f"tf_{arch.name}" if f"tf_{arch.name}" in ARCHITECTURES else "padding='same'"
    raise EffnetError(
        f"{source} weights need TensorFlow 'same' padding but {arch.name} uses "
        f"{arch.padding.value!r} padding; use {fix}"
    )


def load_timm(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> Loaded:
    """A timm ``efficientnet_b*`` / ``tf_efficientnet_*`` state dict (see load_foreign)."""
    return load_foreign(model, state_dict, source="timm")


def load_torchvision(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> Loaded:
    """A torchvision ``efficientnet_b0..b7`` state dict (see load_foreign)."""
    return load_foreign(model, state_dict, source="torchvision")


def load_efficientnet_pytorch(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> Loaded:
    """An ``efficientnet_pytorch`` state dict into a "same"-padding model (see load_foreign)."""
    return load_foreign(model, state_dict, source="efficientnet_pytorch")
