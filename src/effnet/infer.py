"""Fast inference: one Runner over ONNX Runtime (when installed) or an optimised PyTorch path.

runner = Runner(effnet.create_model("efficientnet_b0", pretrained="b0.pth"))
top = runner.top_k(images, k=5)       # images: (N, C, H, W), preprocessed (effnet.images)

The ONNX Runtime path exports the deployment form (BN folded, see effnet.export) in
memory and runs it with all graph optimisations on, the squeeze-and-excitation gates
kept in ORT's blocked layout (effnet.ortgraph). The PyTorch path folds BN, switches
to channels_last, traces and freezes the graph (torch.jit.freeze fuses conv + activation
and drops Python overhead) and runs under torch.inference_mode. Both give the eager
model's logits to ~1e-5.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from effnet.arch import Architecture
from effnet.errors import EffnetError
from effnet.export import deploy_form, torch_onnx_export
from effnet.hub import create_model
from effnet.images import Preprocess, load_batch

Backend = Literal["auto", "onnxruntime", "torch", "eager"]
BACKENDS = ("auto", "onnxruntime", "torch", "eager")


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def default_threads() -> int:
    return max(1, torch.get_num_threads())


def load_model(
    model_or_dir: str | Path,
    weights: str | Path | None = None,
    num_classes: int | None = None,
    in_chans: int | None = None,
    **overrides: Any,
) -> nn.Module:
    """Any model ``effnet.resolve`` takes (a saved model or run folder, a name, a published
    ``NAME.TAG`` or ``hf-hub:`` repository, an architecture JSON), in eval mode.

    A published name or repository comes with its weights; a bare name or an architecture
    with ``weights`` (a local file), else random. A folder is a whole model: ``weights``
    and scaling options do not apply to it.
    """
    from effnet.pretrained import split_name
    from effnet.resolve import HUB

    text = str(model_or_dir)
    p = Path(text)
    if (p.is_dir() or p.name == "config.json") and (weights is not None or overrides):
        raise EffnetError(f"{p} is a saved model; --weights and scaling options do not apply")
    tagged = not p.exists() and p.suffix != ".json" and split_name(text)[1] is not None
    published = text.startswith(HUB) or tagged
    pretrained: bool | str | Path | None = weights
    if weights is None and published:
        pretrained = True
    model = create_model(text, pretrained=pretrained, num_classes=num_classes,
                         in_chans=in_chans, **overrides)  # fmt: skip
    return model.eval()


def read_class_names(path: str | Path) -> list[str]:
    """One class name per line (blank lines ignored)."""
    p = Path(path)
    try:
        names = [line.strip() for line in p.read_text(encoding="utf-8").splitlines()]
    except OSError as e:
        raise EffnetError(f"cannot read class names from {p}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise EffnetError(f"class names file {p} is not UTF-8 text") from None
    names = [n for n in names if n]
    if not names:
        raise EffnetError(f"{p} holds no class names")
    return names


def class_names_for(model: nn.Module, classes_file: str | Path | None = None) -> list[str]:
    """The model's own class names, else those in ``classes_file``, else "0", "1", ..."""
    n = int(getattr(model, "num_classes", 0))
    if classes_file is not None:
        names = read_class_names(classes_file)
        if n and len(names) != n:
            raise EffnetError(f"{classes_file} lists {len(names)} classes; the model has {n}")
        return names
    names = getattr(model, "class_names", None)
    return list(names) if names else [str(i) for i in range(n)]


def _set_threads(threads: int | None) -> int:
    n = threads or default_threads()
    if n < 1:
        raise EffnetError(f"threads must be >= 1, got {n}")
    return n


def onnx_session(
    source: str | Path | bytes,
    threads: int | None = None,
    nchwc_gates: bool = True,
    spinning: bool = True,
) -> Any:
    """An ONNX Runtime CPU session with all graph optimisations and ``threads`` intra-op.

    ``nchwc_gates``: also keep the squeeze-and-excitation multiplies in ORT's blocked
    layout (``effnet.ortgraph``; checked against the plain session, else not used).
    ``spinning=False`` when several sessions take turns in one process (see
    ``effnet.ortgraph.ort_session``).
    """
    # ONNX and ONNX Runtime load only when a model is exported or run in ONNX
    from effnet.ortgraph import optimised_session, ort_session

    n = _set_threads(threads)
    src = source if isinstance(source, bytes) else str(source)
    try:
        if nchwc_gates:
            return optimised_session(src, n, spinning=spinning).session
        return ort_session(src, n, "ORT_ENABLE_ALL", spinning=spinning)
    except Exception as e:  # ORT's own types (InvalidProtobuf, Fail) derive from Exception
        if isinstance(source, bytes):
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise EffnetError(
            f"{source}: not a readable ONNX model ({type(e).__name__}: {first})"
        ) from None


def onnx_bytes(model: nn.Module, image_size: int, opset: int = 17) -> bytes:
    """The deployment form of ``model`` as ONNX bytes, dynamic in the batch dimension."""

    deploy = deploy_form(model, image_size)
    x = torch.zeros(1, getattr(model, "in_chans", 3), image_size, image_size)
    buf = io.BytesIO()
    torch_onnx_export(deploy, buf, x, opset, dynamic_batch=True)
    return buf.getvalue()


class TorchPath:
    """BN folded, channels_last, traced and frozen once per input shape, inference_mode."""

    def __init__(self, model: nn.Module, freeze: bool = True) -> None:

        self.model = deploy_form(model).to(memory_format=torch.channels_last)
        self.freeze = freeze
        self._graphs: dict[tuple[int, ...], Any] = {}

    def _graph(self, x: torch.Tensor) -> Any:
        key = tuple(x.shape)
        if key not in self._graphs:
            if not self.freeze:
                return self.model
            with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                warnings.simplefilter("ignore", DeprecationWarning)  # jit is deprecated in 2.13
                traced = torch.jit.trace(self.model, x.clone(), check_trace=False)
                self._graphs[key] = torch.jit.freeze(traced.eval())
        return self._graphs[key]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return self._graph(x)(x)


class Runner:
    """Logits, probabilities and top-k for preprocessed batches, on the fastest backend.

    ``backend``: "auto" (ONNX Runtime if installed, else "torch"), "onnxruntime",
    "torch" (optimised PyTorch) or "eager" (the model as is, for checking).
    ``spinning=False``: ORT's idle threads sleep instead of spinning (for several
    runners taking turns in one process, as ``effnet bench`` does).
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        backend: Backend = "auto",
        threads: int | None = None,
        class_names: Sequence[str] | None = None,
        onnx_path: str | Path | None = None,
        spinning: bool = True,
    ) -> None:
        if backend not in BACKENDS:
            raise EffnetError(f"unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
        if model is None and onnx_path is None:
            raise EffnetError("Runner needs a model or an ONNX file")
        if backend == "auto":
            backend = "onnxruntime" if onnxruntime_available() else "torch"
        if onnx_path is not None and backend != "onnxruntime":
            raise EffnetError(f"{onnx_path}: an ONNX file runs only on the onnxruntime backend")
        if backend == "onnxruntime" and not onnxruntime_available():
            raise EffnetError("onnxruntime is not installed (use backend 'torch')")
        self.backend = backend
        self.model = model.eval() if model is not None else None
        self.threads = _set_threads(threads)
        self.spinning = spinning
        self.class_names = list(class_names) if class_names is not None else None
        self.arch = getattr(model, "arch", None)
        self.in_chans = int(getattr(model, "in_chans", 3))
        self._session: Any = None
        self._sessions: dict[int, Any] = {}
        self._torch: TorchPath | None = None
        if onnx_path is not None:
            self._session = onnx_session(onnx_path, self.threads, spinning=spinning)

    @classmethod
    def from_onnx(cls, path: str | Path, threads: int | None = None) -> Runner:
        """A runner over an exported file; its preprocessing comes from the file's metadata."""
        p = Path(path)
        if not p.is_file():
            raise EffnetError(f"{p}: no such ONNX file")
        runner = cls(backend="onnxruntime", threads=threads, onnx_path=p)
        meta = runner._session.get_modelmeta().custom_metadata_map
        try:
            if "effnet.class_names" in meta:
                runner.class_names = [str(n) for n in json.loads(meta["effnet.class_names"])]
            if "effnet.arch" in meta:
                runner.arch = Architecture.from_json(meta["effnet.arch"])
            runner.in_chans = int(meta.get("effnet.in_chans", 3))
        except (EffnetError, ValueError, TypeError, RecursionError) as e:
            raise EffnetError(f"{p}: bad effnet metadata ({e})") from None
        return runner

    def _ort(self, x: torch.Tensor) -> torch.Tensor:
        session = self._session
        if self.model is not None:  # one session per image size (exported at that size)
            session = self._sessions.get(x.shape[-1])
            if session is None:
                exported = onnx_bytes(self.model, x.shape[-1])
                session = onnx_session(exported, self.threads, spinning=self.spinning)
                self._sessions[x.shape[-1]] = session
        name = session.get_inputs()[0].name
        out = session.run(None, {name: np.ascontiguousarray(x.numpy(), np.float32)})[0]
        return torch.from_numpy(out)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, num_classes) logits for a preprocessed (N, C, H, W) batch."""
        if x.ndim != 4:
            raise EffnetError(f"expected a (N, C, H, W) batch, got shape {tuple(x.shape)}")
        if x.shape[0] == 0:
            return torch.empty(0, len(self.class_names or []))
        x = x.float()
        if self.backend == "onnxruntime":
            return self._ort(x)
        assert self.model is not None
        if self.backend == "eager":
            with torch.inference_mode():
                return self.model(x)
        if self._torch is None:
            self._torch = TorchPath(self.model)
        return self._torch(x)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x).softmax(dim=1)

    def top_k(self, x: torch.Tensor, k: int = 5) -> list[list[Guess]]:
        """The ``k`` most probable classes of each image, most probable first."""
        if k < 1:
            raise EffnetError(f"--top-k must be >= 1, got {k}")
        probs = self.probabilities(x)
        k = min(k, probs.shape[1])
        values, indices = probs.topk(k, dim=1)
        names = self.class_names
        return [
            [
                Guess(int(i), names[int(i)] if names else str(int(i)), float(p))
                for p, i in zip(row_p, row_i)
            ]
            for row_p, row_i in zip(values.tolist(), indices.tolist())
        ]


@dataclass(frozen=True)
class Guess:
    index: int
    label: str
    probability: float


def image_paths(args: Sequence[str]) -> list[str]:
    """Image files from what a user typed: files as given, folders walked (sorted, image
    extensions only, hidden files skipped), shell-style globs (``**`` too) expanded. A
    folder or glob that holds no image is a one-line error naming it."""
    import glob

    from effnet.data.imagefolder import EXTENSIONS

    out: list[str] = []
    for a in args:
        p = Path(a).expanduser()
        if p.is_dir():
            files = (f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
            found = sorted(str(f) for f in files if f.suffix.lower() in EXTENSIONS)
        elif any(c in a for c in "*?[") and not p.exists():
            found = sorted(glob.glob(str(p), recursive=True))
        else:
            out.append(a)
            continue
        if not found:
            raise EffnetError(f"{a}: no image files there")
        out.extend(found)
    return out


def iter_predictions(
    runner: Runner, paths: Sequence[str], top_k: int, batch_size: int
) -> Iterator[tuple[str, Any, str | None]]:
    """(path, guesses, None) or (path, None, why it could not be read) for each image, in
    order, batch by batch as each is done: a long list streams, bad files never stop it."""
    pre = Preprocess.of(runner)
    for i in range(0, len(paths), batch_size):
        chunk = list(paths[i : i + batch_size])
        batch = load_batch(chunk, pre)
        guesses = dict(zip(batch.paths, runner.top_k(batch.tensor, top_k))) if batch.paths else {}
        failed = dict(batch.failed)
        for p in chunk:
            p = str(p)
            yield (p, guesses[p], None) if p in guesses else (p, None, failed.get(p, "unreadable"))


def predict_files(
    runner: Runner, paths: list[str], top_k: int, batch_size: int
) -> tuple[list[tuple[str, Any]], list[tuple[str, str]]]:
    """Top-k classes of image files, read in batches with the runner's preprocessing:
    ([(path, guesses)], [(path, why it could not be read)]); bad files never stop the rest."""
    results, failed = [], []
    for path, guesses, why in iter_predictions(runner, paths, top_k, batch_size):
        if why is None:
            results.append((path, guesses))
        else:
            failed.append((path, why))
    return results, failed
