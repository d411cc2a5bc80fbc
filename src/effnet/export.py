"""Deployment form of a network: batch norm folded into convolutions, ONNX export, validation.

At inference a batch norm is a per-channel affine map, so it can be merged into the
convolution before it (w' = w * g / sqrt(var + eps), b' = (b - mean) * g / sqrt(var + eps)
+ beta). Folding is done here by hand over the (conv, bn) pairs each block class declares
(``conv_bn_pairs``; a batch norm left over is an error, never skipped), rather
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

from effnet.errors import EffnetError
from effnet.io import atomic_write_with
from effnet.layers import Conv2dSame, SqueezeExcite, same_pad_amount
from effnet.memory import check_fits

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
        for conv_name, bn_name in getattr(type(module), "conv_bn_pairs", ()):
            conv, bn = _submodule(module, conv_name), _submodule(module, bn_name)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                fold_conv_bn(conv, bn)
                _replace(module, bn_name, nn.Identity())
    left = [name for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    if left:  # a module whose class declares no conv_bn_pairs (effnet.blocks): never skip it
        raise EffnetError(
            f"cannot fold batch norm {left[0]} ({len(left)} in all): its module declares no "
            "conv_bn_pairs"
        )
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


class TracedSameConv(nn.Conv2d):
    """A "same"-padding conv whose padding is computed inside the exported graph.

    ``Conv2dSame`` takes Python ints from the input shape; traced, ``max(..., 0)`` and
    ``if ph or pw`` turn the traced size into constants for one resolution. Here the
    amount stays a tensor (Shape -> arithmetic -> Pad in ONNX), so one file runs at any
    H x W. A stride-1 conv pads ``(k - 1) * d`` whatever the size, so it stays a constant.
    """

    def _amount(self, size: Any, axis: int) -> Any:
        k, s, d = self.kernel_size[axis], self.stride[axis], self.dilation[axis]
        if s == 1:
            return (k - 1) * d
        out = (size + s - 1) // s  # ceil that traces right (ONNX int Div truncates)
        return torch.clamp(torch.as_tensor((out - 1) * s + (k - 1) * d + 1 - size), min=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ph, pw = self._amount(x.shape[-2], 0), self._amount(x.shape[-1], 1)
        x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def trace_same_padding(model: nn.Module) -> None:
    """Turn every dynamic "same" conv of ``model`` into a TracedSameConv (any input size)."""
    for m in model.modules():
        if type(m) is Conv2dSame:
            m.__class__ = TracedSameConv


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


def deploy_form(
    model: nn.Module, image_size: int | None = None, fold: bool = True, dynamic: bool = False
) -> nn.Module:
    """An eval-mode copy for inference: BN folded, SE squeezes as pooling ops, and "same"
    padding either fixed for ``image_size`` or, with ``dynamic``, computed in the graph
    (one of the two is needed for a correct ONNX export)."""
    model = fold_bn(model) if fold else copy.deepcopy(model).eval()
    for m in model.modules():
        if type(m) is SqueezeExcite:
            m.__class__ = PooledSqueezeExcite
    if dynamic:
        trace_same_padding(model)
    elif image_size is not None:
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
    dynamic_size: bool = False  # any H x W (and batch) at run time
    checks: tuple[tuple[tuple[int, ...], float], ...] = ()  # (input shape, max abs diff)


def _metadata(model: nn.Module, image_size: int, dynamic: bool = False) -> dict[str, str]:
    """The model's config travels inside the ONNX file, so a runner can preprocess right.

    A fixed-size file takes only the size it was traced at, so that becomes the
    resolution; a dynamic one keeps the model's own (its preprocessing default).
    """
    meta: dict[str, str] = {}
    arch = getattr(model, "arch", None)
    if arch is not None:
        if arch.resolution != image_size and not dynamic:
            arch = arch.replace(resolution=image_size)
        meta["effnet.arch"] = arch.to_json()
    meta["effnet.dynamic_size"] = "true" if dynamic else "false"
    names = getattr(model, "class_names", None)
    if names:
        meta["effnet.class_names"] = json.dumps(list(names))
    meta["effnet.in_chans"] = str(getattr(model, "in_chans", 3))
    cfg = getattr(model, "pretrained_cfg", None)
    if cfg:  # the weights' own record (tag, hub id, published top-1) beside the arch
        meta["effnet.pretrained_cfg"] = json.dumps(cfg, default=list)
    return meta


def torch_onnx_export(
    model: nn.Module,
    f: Any,
    x: torch.Tensor,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    dynamic_size: bool = False,
) -> None:
    """torch.onnx.export with the TorchScript exporter (the dynamo one needs onnxscript).

    ``dynamic_size`` makes batch, height and width symbolic; the model must then compute
    any size-dependent padding from tensors (``deploy_form(..., dynamic=True)``).
    """
    axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
    if dynamic_size:
        axes = {"input": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", "Constant folding - Only steps=1", UserWarning)
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
    model: nn.Module,
    tmp: str,
    x: torch.Tensor,
    opset: int,
    dynamic_batch: bool,
    dynamic_size: bool = False,
) -> None:
    # ONNX and ONNX Runtime load only when a model is exported or run in ONNX
    import onnx

    torch_onnx_export(model, tmp, x, opset, dynamic_batch, dynamic_size)
    proto = onnx.load(tmp)
    for key, value in _metadata(model, x.shape[-1], dynamic_size).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, tmp)


def dynamic_check_shapes(size: int) -> list[tuple[int, int]]:
    """The three (H, W) a dynamic export is checked at: the trace size, a larger odd
    square and an odd non-square one, so both parities of every stride-2 "same" pad run."""
    big, small = (size * 3 // 2) | 1, max(size // 2, 1) | 1
    return [(size, size), (big, big), (small, big)]


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    image_size: int | None = None,
    dynamic_batch: bool = False,
    dynamic_size: bool = False,
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
    logits. With ``dynamic_size`` the file takes any batch and H x W ("same" padding is
    computed in the graph) and is checked at the three sizes of ``dynamic_check_shapes``.
    """
    if not 7 <= opset <= 23:
        raise EffnetError(f"--opset must be in 7..23, got {opset}")
    if dynamic_size and opset < 11:
        raise EffnetError(f"--dynamic needs opset >= 11 (Pad with computed amounts), got {opset}")
    size = image_size or getattr(getattr(model, "arch", None), "resolution", 224)
    in_chans = getattr(model, "in_chans", 3)
    if size < 1:
        raise EffnetError(f"export image size must be positive, got {size}")
    sizes = dynamic_check_shapes(size) if dynamic_size else [(size, size)]
    if getattr(model, "arch", None) is not None:
        largest = max(max(hw) for hw in sizes)
        check_fits(model.arch, getattr(model, "num_classes", 1000), in_chans, resolution=largest)
    model = model.eval()
    deploy = deploy_form(model, size, fold=fold, dynamic=dynamic_size)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, in_chans, size, size, generator=gen)
    path = Path(path)
    atomic_write_with(
        path, lambda tmp: _write_onnx(deploy, tmp, x, opset, dynamic_batch, dynamic_size)
    )
    checks: list[tuple[tuple[int, ...], float]] = []
    if validate:
        n = batch if dynamic_batch or dynamic_size else 1
        inputs = [torch.randn(n, in_chans, h, w, generator=gen) for h, w in sizes]
        if validation_input is not None:
            inputs[0] = validation_input
        checks = [(tuple(v.shape), validate_onnx(path, model, v)) for v in inputs]
    diff = max(d for _, d in checks) if checks else None
    return Export(
        path, opset, size, dynamic_batch or dynamic_size, diff, dynamic_size, tuple(checks)
    )


def validate_onnx(path: str | Path, model: nn.Module, x: torch.Tensor) -> float:
    """Max abs difference between ONNX Runtime on ``path`` and eager ``model`` on ``x``."""
    # ONNX and ONNX Runtime load only when a model is exported or run in ONNX
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    got = session.run(None, {name: x.numpy()})[0]
    with torch.inference_mode():
        want = model.eval()(x)
    return float((torch.from_numpy(got) - want).abs().max())
