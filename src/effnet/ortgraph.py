"""ONNX Runtime's optimised graph, with the squeeze-and-excitation gate kept in NCHWc.

ORT's CPU provider runs convolutions in a blocked layout, NCHWc: channels split into
blocks of ``b`` (8 with AVX2, 16 with AVX-512), memory ordered (N, C/b, H, W, b). Its
layout transformer converts every op it knows, but not a broadcast ``Mul``, so in every
MBConv block the SE gate multiply costs three passes over the expanded feature map: a
``ReorderOutput`` to NCHW, the ``Mul``, a ``ReorderInput`` back (38 of 361 ms for B0 at
batch 16, two threads, on an AVX2 CPU).

The multiply needs no reorder. A gate of shape (N, C, 1, 1) has the same memory in
both layouts, and the blocked map reshaped to (N, C/b, H*W/k, k*b) lines up with the
gate's (N, C/b, 1, b) tiled k times along its last axis, so one broadcast ``Mul`` over
``Reshape`` views computes the gated map in place of the three passes (k: the largest
divisor of H*W with spans of at most ``MAX_SPAN`` floats, which keeps ORT's broadcast
loop on long vectors).

``rewrite_gates`` does this on ORT's own optimised graph (which only the machine that
optimised it can run: the block size is the CPU's). ``optimised_session`` optimises,
rewrites, and keeps the rewritten session only if it matches the plain one on a random
batch; otherwise, or when nothing matched, the plain session is returned.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_SPAN = 64
"""Floats in one span of the blocked multiply: 64 measured best of 64, 256, 512, 1024."""


def block_sizes() -> tuple[int, ...]:
    """NCHWc block sizes to try, the likelier first (16 with AVX-512F, else 8)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((ln for ln in f if ln.startswith("flags")), "")
    except OSError:
        flags = ""
    return (16, 8) if " avx512f" in flags else (8, 16)


def span_repeats(pixels: int, block: int, max_span: int = MAX_SPAN) -> int:
    """The largest k dividing ``pixels`` with ``k * block <= max_span`` (at least 1)."""
    return max((k for k in range(1, max_span // block + 1) if pixels % k == 0), default=1)


def static_shapes(model: Any) -> dict[str, list[int | None]]:
    """Every tensor's shape from ONNX shape inference (None for a dynamic dimension)."""
    from onnx import shape_inference

    inferred = shape_inference.infer_shapes(model)
    shapes = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    return shapes


@dataclass(frozen=True)
class Gate:
    """One matched SE multiply: the nodes it replaces and the shapes it needs."""

    mul: Any
    reorder_in: Any
    removed: tuple[Any, ...]
    feature_map: str  # the NCHWc map (the ReorderOutput's input)
    gate: str  # the (N, C, 1, 1) gate, NCHWc or NCHW: the same memory
    channels: int
    height: int
    width: int


def _channels_last(node: Any) -> bool:
    return any(a.name == "channels_last" and a.i for a in node.attribute)


def _match(mul: Any, producer: dict, consumers: dict, shapes: dict, block: int) -> Gate | None:
    if mul.op_type != "Mul" or mul.domain not in ("", "ai.onnx") or len(mul.input) != 2:
        return None
    a, b = mul.input
    if shapes.get(a, [])[2:] == [1, 1]:
        a, b = b, a
    sa, sb = shapes.get(a), shapes.get(b)
    pa, pb = producer.get(a), producer.get(b)
    if sa is None or sb is None or pa is None or pb is None or len(sa) != 4:
        return None
    if sb[2:] != [1, 1] or sa[1] != sb[1] or None in sa[1:] or pa.op_type != "ReorderOutput":
        return None
    channels, height, width = sa[1:]
    if channels % block or consumers.get(a) != [mul]:
        return None
    after = consumers.get(mul.output[0], [])
    if len(after) != 1 or after[0].op_type != "ReorderInput":
        return None
    if _channels_last(pa) or _channels_last(after[0]):  # an NHWC side: not this pattern
        return None
    removed = [pa, mul, after[0]]
    gate = b
    if pb.op_type == "ReorderOutput" and consumers.get(b) == [mul]:
        gate = pb.input[0]
        removed.append(pb)
    return Gate(mul, after[0], tuple(removed), pa.input[0], gate, channels, height, width)


def _blocked_multiply(g: Gate, block: int, graph: Any) -> list[Any]:
    from onnx import helper, numpy_helper

    k = span_repeats(g.height * g.width, block, MAX_SPAN)
    prefix = g.reorder_in.output[0] + "_nchwc_gate"

    def const(name: str, values: list[int]) -> str:
        graph.initializer.append(numpy_helper.from_array(np.array(values, np.int64), name))
        return name

    c, pixels = g.channels, g.height * g.width
    return [
        helper.make_node(
            "Reshape",
            [g.feature_map, const(prefix + "_map_shape", [0, c // block, pixels // k, k * block])],
            [prefix + "_map"],
        ),
        helper.make_node(
            "Reshape",
            [g.gate, const(prefix + "_gate_shape", [0, c // block, 1, block])],
            [prefix + "_gate"],
        ),
        helper.make_node(
            "Tile",
            [prefix + "_gate", const(prefix + "_repeats", [1, 1, 1, k])],
            [prefix + "_tiled"],
        ),
        helper.make_node("Mul", [prefix + "_map", prefix + "_tiled"], [prefix + "_product"]),
        helper.make_node(
            "Reshape",
            [prefix + "_product", const(prefix + "_back", [0, c, g.height, g.width])],
            [g.reorder_in.output[0]],
        ),
    ]


def rewrite_gates(original: Any, optimised: Any, block: int) -> tuple[Any, int]:
    """``optimised`` (ORT's graph of ``original``) with each SE gate multiply kept in NCHWc.

    Returns the edited model and how many multiplies were rewritten; shapes come from
    ``original`` (ORT's blocked ops have no ONNX shape inference), so a multiply whose
    map has a dynamic height or width is left as it is.
    """
    shapes = static_shapes(original)
    graph = optimised.graph
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    gates = [
        m
        for node in graph.node
        if (m := _match(node, producer, consumers, shapes, block)) is not None
        and node.output[0] not in outputs
    ]
    dropped = {id(n) for g in gates for n in g.removed}
    replacement = {id(g.reorder_in): _blocked_multiply(g, block, graph) for g in gates}
    nodes = []
    for node in graph.node:
        if id(node) in replacement:
            nodes.extend(replacement[id(node)])
        elif id(node) not in dropped:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return optimised, len(gates)


def ort_session(
    source: Any, threads: int, level: str, save_to: str | None = None, spinning: bool = True
) -> Any:
    """A CPU session at graph optimisation ``level`` (a ``GraphOptimizationLevel`` name).

    ``spinning=False`` stops idle intra-op threads from spinning: needed when several
    sessions take turns in one process (two spinning B0 sessions at batch 1 time at
    19-50 ms interquartile, against 20.1-21.1 ms without spinning)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if save_to is not None:
        so.optimized_model_filepath = save_to
        so.log_severity_level = 3  # ORT warns that a saved NCHWc graph is machine-specific
    return ort.InferenceSession(source, so, providers=["CPUExecutionProvider"])


def _probe(session: Any, shape: list[int | None]) -> np.ndarray:
    rng = np.random.default_rng(0)
    dims = [1 if d is None else d for d in shape]
    x = rng.standard_normal(dims).astype(np.float32)
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@dataclass(frozen=True)
class Optimised:
    """An ORT session, and how many SE gate multiplies it runs in NCHWc (0: ORT's graph)."""

    session: Any
    gates: int
    block: int | None


def optimised_session(source: str | bytes, threads: int, spinning: bool = True) -> Optimised:
    """ORT's fully optimised session for ``source``, with the SE gates kept in NCHWc.

    The rewritten session is used only if its output on a random batch equals the plain
    session's within 1e-5 (relative to the output's scale); else the plain one is.
    """
    with tempfile.TemporaryDirectory(prefix="effnet-ort-") as tmp:
        path = os.path.join(tmp, "optimised.onnx")
        plain = ort_session(source, threads, "ORT_ENABLE_ALL", save_to=path, spinning=spinning)
        with open(path, "rb") as f:
            optimised_bytes = f.read()
    if b"ReorderOutput" not in optimised_bytes:  # ORT chose no blocked layout on this CPU
        return Optimised(plain, 0, None)
    try:
        rewritten = _rewritten(source, optimised_bytes, plain, threads, spinning)
    except Exception:  # the rewrite is an optimisation: whatever fails, ORT's session stays
        rewritten = None
    return rewritten or Optimised(plain, 0, None)


def _rewritten(
    source: str | bytes, optimised_bytes: bytes, plain: Any, threads: int, spinning: bool
) -> Optimised | None:
    """The first block size whose rewrite matches ``plain`` on a random batch, or None."""
    import onnx

    original = onnx.load_from_string(source) if isinstance(source, bytes) else onnx.load(source)
    dims = original.graph.input[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    if len(shape) != 4 or None in shape[1:]:
        return None
    want = _probe(plain, shape)
    scale = max(float(np.abs(want).max()), 1e-12)
    for block in block_sizes():
        edited, count = rewrite_gates(original, onnx.load_from_string(optimised_bytes), block)
        if count == 0:
            continue
        del edited.metadata_props[:]  # the file's own metadata (effnet.arch, class names)
        edited.metadata_props.extend(original.metadata_props)
        try:
            edited_bytes = edited.SerializeToString()
            session = ort_session(edited_bytes, threads, "ORT_ENABLE_BASIC", spinning=spinning)
            got = _probe(session, shape)
        except Exception:  # an edit ORT refuses is an edit not kept
            continue
        if got.shape == want.shape and float(np.abs(got - want).max()) <= 1e-5 * scale:
            return Optimised(session, count, block)
    return None
