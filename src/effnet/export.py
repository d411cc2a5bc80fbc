"""Deployment form of a network: batch norm folded into convolutions, ONNX export, validation.

At inference a batch norm is a per-channel affine map, so it can be merged into the
convolution before it (w' = w * g / sqrt(var + eps), b' = (b - mean) * g / sqrt(var + eps)
+ beta). Folding is done here by hand over the (conv, bn) pairs our blocks name, rather
than with torch.fx / torch.ao fusion: those need a traceable graph and, for the "same"
padding convs, lose the input-size-dependent padding; the pairs below are explicit and
survive any forward().
"""

from __future__ import annotations

import copy
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from effnet.blocks import (
    Bottleneck,
    Conv2dSame,
    ConvBnAct,
    DepthwiseSeparable,
    MBConv,
    SqueezeExcite,
    same_pad_amount,
)
from effnet.errors import EffnetError
from effnet.io import atomic_write_with
from effnet.model import Network

# (conv, bn) attribute pairs whose forward is bn(conv(x)), per module type
CONV_BN_PAIRS: dict[type[nn.Module], tuple[tuple[str, str], ...]] = {
    Network: (("conv_stem", "bn1"), ("conv_head", "bn2")),
    MBConv: (("conv_pw", "bn1"), ("conv_dw", "bn2"), ("conv_pwl", "bn3")),
    ConvBnAct: (("conv", "bn1"),),
    DepthwiseSeparable: (("conv_dw", "bn1"), ("conv_pw", "bn2")),
    Bottleneck: (
        ("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"), ("downsample.0", "downsample.1"),
    ),
}  # fmt: skip

DEFAULT_OPSET = 17


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Merge ``bn`` (with its running statistics) into ``conv`` in place; adds a bias.

    Computed in float64 and rounded once, so the folded conv is as close to conv-then-BN
    as float32 allows even where a tiny running variance makes the scale large.
    """
    with torch.no_grad():
        dtype = conv.weight.dtype
        scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
        bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
        weight = conv.weight.double() * scale.reshape(-1, 1, 1, 1)
        new_bias = (bias - bn.running_mean.double()) * scale + bn.bias.double()
        conv.weight.copy_(weight.to(dtype))
        conv.bias = nn.Parameter(new_bias.to(dtype), requires_grad=False)


def _submodule(root: nn.Module, name: str) -> nn.Module | None:
    try:
        return root.get_submodule(name)
    except AttributeError:
        return None


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, new)


def fold_bn(model: nn.Module, inplace: bool = False) -> nn.Module:
    """An eval-mode copy of ``model`` with every batch norm of our blocks folded away.

    Each folded BN is replaced by ``nn.Identity``, so state-dict names of the convs stay
    put. Outputs match the unfolded model in eval mode to float rounding (~1e-6).
    """
    model = model if inplace else copy.deepcopy(model)
    model.eval()
    for module in list(model.modules()):
        for conv_name, bn_name in CONV_BN_PAIRS.get(type(module), ()):
            conv, bn = _submodule(module, conv_name), _submodule(module, bn_name)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                fold_conv_bn(conv, bn)
                _replace(module, bn_name, nn.Identity())
    return model


class PooledSqueezeExcite(SqueezeExcite):
    """SE whose squeeze is a global average pool op rather than a mean over (H, W).

    The same numbers; but ONNX Runtime keeps GlobalAveragePool in its blocked NCHWc
    layout while a ReduceMean forces a reorder of the tensor out of it and back, once per
    block.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        s = self.conv_expand(self.act1(self.conv_reduce(s)))
        return x * s.sigmoid()


class StaticSameConv(nn.Conv2d):
    """A "same"-padding conv with its padding fixed for one input size (for export).

    Traced for ONNX, the dynamic version's ceil division ``-(-size // stride)`` on the
    traced size rounds toward zero: at odd sizes the export pads one pixel short (a
    45 px input gave 22x22 instead of 23x23). At a known input size the padding is a
    constant, as in timm's Conv2dSameExport.
    """

    pads: tuple[int, int, int, int] = (0, 0, 0, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.pads):
            x = F.pad(x, list(self.pads))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def freeze_same_padding(model: nn.Module, in_chans: int, image_size: int) -> None:
    """Turn every dynamic "same" conv of ``model`` into a StaticSameConv for ``image_size``."""
    sizes: dict[nn.Module, tuple[int, int]] = {}
    convs = [m for m in model.modules() if type(m) is Conv2dSame]
    if not convs:
        return
    hooks = [
        c.register_forward_pre_hook(lambda m, args: sizes.__setitem__(m, args[0].shape[-2:]))
        for c in convs
    ]
    with torch.no_grad():
        model(torch.zeros(1, in_chans, image_size, image_size))
    for h in hooks:
        h.remove()
    for c in convs:
        ih, iw = sizes[c]
        ph = same_pad_amount(ih, c.kernel_size[0], c.stride[0], c.dilation[0])
        pw = same_pad_amount(iw, c.kernel_size[1], c.stride[1], c.dilation[1])
        c.__class__ = StaticSameConv
        c.pads = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)


def deploy_form(model: nn.Module, image_size: int | None = None, fold: bool = True) -> nn.Module:
    """An eval-mode copy for inference: BN folded, SE squeezes as pooling ops, and, given
    ``image_size``, "same" padding fixed for that size (required for ONNX export)."""
    model = fold_bn(model) if fold else copy.deepcopy(model).eval()
    for m in model.modules():
        if type(m) is SqueezeExcite:
            m.__class__ = PooledSqueezeExcite
    if image_size is not None:
        freeze_same_padding(model, getattr(model, "in_chans", 3), image_size)
    return model


def count_batch_norms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@dataclass(frozen=True)
class Export:
    """What ``export_onnx`` wrote and how close ONNX Runtime came to eager PyTorch."""

    path: Path
    opset: int
    image_size: int
    dynamic_batch: bool
    max_abs_diff: float | None  # ORT vs eager PyTorch (unfolded); None if not validated


def _metadata(model: nn.Module, image_size: int) -> dict[str, str]:
    """The model's config travels inside the ONNX file, so a runner can preprocess right."""
    meta: dict[str, str] = {}
    arch = getattr(model, "arch", None)
    if arch is not None:
        if arch.resolution != image_size:  # the file takes only the size it was exported at
            arch = arch.replace(resolution=image_size)
        meta["effnet.arch"] = arch.to_json()
    names = getattr(model, "class_names", None)
    if names:
        meta["effnet.class_names"] = json.dumps(list(names))
    meta["effnet.in_chans"] = str(getattr(model, "in_chans", 3))
    return meta


def torch_onnx_export(
    model: nn.Module,
    f: Any,
    x: torch.Tensor,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
) -> None:
    """torch.onnx.export with the TorchScript exporter (the dynamo one needs onnxscript)."""
    axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            model,
            (x,),
            f,
            dynamo=False,
            opset_version=opset,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes=axes,
            do_constant_folding=True,
        )


def _write_onnx(
    model: nn.Module, tmp: str, x: torch.Tensor, opset: int, dynamic_batch: bool
) -> None:
    import onnx

    torch_onnx_export(model, tmp, x, opset, dynamic_batch)
    proto = onnx.load(tmp)
    for key, value in _metadata(model, x.shape[-1]).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, tmp)


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    image_size: int | None = None,
    dynamic_batch: bool = False,
    opset: int = DEFAULT_OPSET,
    fold: bool = True,
    validate: bool = True,
    batch: int = 2,
    validation_input: torch.Tensor | None = None,
) -> Export:
    """Write ``model`` (BN folded) to ``path`` as ONNX; check it in ONNX Runtime.

    The export is traced at ``image_size`` (default: the architecture's resolution);
    validation feeds ``validation_input`` or ``batch`` random images (a different batch
    size than the trace when ``dynamic_batch``) and reports the max abs difference of the
    logits.
    """
    if not 7 <= opset <= 23:
        raise EffnetError(f"--opset must be in 7..23, got {opset}")
    size = image_size or getattr(getattr(model, "arch", None), "resolution", 224)
    in_chans = getattr(model, "in_chans", 3)
    model = model.eval()
    deploy = deploy_form(model, size, fold=fold)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, in_chans, size, size, generator=gen)
    path = Path(path)
    atomic_write_with(path, lambda tmp: _write_onnx(deploy, tmp, x, opset, dynamic_batch))
    diff = None
    if validate:
        n = batch if dynamic_batch else 1
        x = torch.randn(n, in_chans, size, size, generator=gen)
        diff = validate_onnx(path, model, x if validation_input is None else validation_input)
    return Export(path, opset, size, dynamic_batch, diff)


def validate_onnx(path: str | Path, model: nn.Module, x: torch.Tensor) -> float:
    """Max abs difference between ONNX Runtime on ``path`` and eager ``model`` on ``x``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    got = session.run(None, {name: x.numpy()})[0]
    with torch.inference_mode():
        want = model.eval()(x)
    return float((torch.from_numpy(got) - want).abs().max())
