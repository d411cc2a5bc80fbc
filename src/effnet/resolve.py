"""The one resolver: what a user types -> architecture, weights and preprocessing.

Accepted, in this order:

- an ``Architecture`` object;
- ``hf-hub:ORG/REPO[@REVISION]``: a hub repository whose ``config.json`` is ours or
  timm's (it names an architecture effnet builds, its ``model_args`` and its
  ``pretrained_cfg``); its weights are ``model.safetensors``, else ``pytorch_model.bin``;
- a folder: a saved model (``config.json`` + ``model.safetensors``), a training run (its
  ``model/``), or a timm hub folder (its config.json names the architecture);
- an architecture JSON file (``effnet arch --json``);
- a registered name, ``NAME`` or ``NAME.TAG`` (``efficientnet_b0.ra_in1k``): the tag's
  published weights (effnet.pretrained) with ``pretrained=True``; a name alone means its
  default tag.

``pretrained`` is False (no weights; a folder or hub repository still brings its
preprocessing), True (the weights the spec names), or a local weights file or folder in
any format ``effnet.weights`` reads. The weights' preprocessing (input size, crop_pct,
interpolation, mean, std) goes into the architecture, so every later step (predict, cam,
evaluate, export, the data pipeline) reads it from there; the caller's overrides win.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from effnet.arch import Architecture, Norm
from effnet.errors import EffnetError
from effnet.registry import ARCHITECTURES, SCALE_KEYS, get_arch

HUB = "hf-hub:"
# timm's create_model keywords that mean our architecture options
TIMM_ARGS = {"channel_multiplier": "width", "depth_multiplier": "depth",
             "drop_rate": "dropout", "drop_path_rate": "drop_path"}  # fmt: skip


@dataclass(frozen=True)
class Resolved:
    """A model to build: its architecture (preprocessing included) and where its weights are."""

    arch: Architecture
    label: str  # what the user typed, for messages and default output names
    weights: Path | None = None  # a local file or folder; None: random initialisation
    source: str = "auto"  # the weights' format for effnet.weights.load_pretrained
    num_classes: int | None = None  # the weights' classes, where known
    in_chans: int | None = None
    class_names: tuple[str, ...] | None = None
    pretrained_cfg: dict[str, Any] | None = None  # timm's pretrained_cfg of the weights
    eps: float | None = None  # batch-norm epsilon the config states (timm's bn_eps)


def resolve(
    spec: str | Path | Architecture,
    pretrained: bool | str | Path | None = False,
    cache_dir: str | Path | None = None,
    revision: str | None = None,
    **overrides: Any,
) -> Resolved:
    """See the module docstring. Bad input: a one-line ``EffnetError``."""
    if isinstance(spec, Architecture):
        return _local_weights(Resolved(get_arch(spec, **overrides), spec.name), pretrained)
    text = str(spec)
    if text.startswith(HUB):
        return _hub(text[len(HUB) :], pretrained, cache_dir, revision, overrides)
    path = Path(text).expanduser()
    if path.is_dir() or (path.name == "config.json" and path.is_file()):
        return _folder(path if path.is_dir() else path.parent, pretrained, overrides)
    if text.endswith(".json") or path.is_file():
        if pretrained is True:
            raise EffnetError(
                f"{text} is an architecture file: it has no published weights "
                "(pass pretrained=PATH to load a weights file)"
            )
        return _local_weights(Resolved(get_arch(path, **overrides), path.stem), pretrained)
    return _named(text, pretrained, cache_dir, overrides)


def _local_weights(r: Resolved, pretrained: bool | str | Path | None) -> Resolved:
    if pretrained is True:
        raise EffnetError(f"{r.label}: no published weights to load (pass pretrained=PATH)")
    if not pretrained:
        return r
    return replace(r, weights=Path(pretrained).expanduser())


def _named(text: str, pretrained: Any, cache_dir: Any, overrides: dict[str, Any]) -> Resolved:
    from effnet.pretrained import lookup, split_name

    arch_name, tag = split_name(text)
    if arch_name not in ARCHITECTURES:
        return Resolved(get_arch(text, **overrides), text)  # get_arch says what is known
    if tag is None and pretrained is not True:
        return _local_weights(Resolved(get_arch(arch_name, **overrides), text), pretrained)
    cfg = lookup(arch_name, tag)
    scaled = sorted(k for k in SCALE_KEYS if overrides.get(k) is not None)
    if scaled and pretrained is True:
        given = ", ".join(f"{k}={overrides[k]}" for k in scaled)
        raise EffnetError(
            f"{cfg.name} has published weights for its own size only, not scaled by "
            f"{given}: drop pretrained=True (random weights) or the scaling"
        )
    arch = with_cfg(get_arch(arch_name, **overrides), cfg.to_dict(), overrides)
    r = Resolved(arch, text, num_classes=cfg.num_classes, pretrained_cfg=cfg.to_dict())
    if pretrained is True:
        from effnet.pretrained.fetch import hub_weights, url_file

        if cfg.hf_hub_id:
            _check_hub_names(cfg.hf_hub_id, arch_name, cache_dir)
            path, source = hub_weights(cfg.hf_hub_id, cache_dir=cache_dir), "timm"
        else:
            path, source = url_file(cfg.url, cache_dir), "torchvision"
        r = replace(r, weights=path, source=source)
    elif pretrained:  # the tag's preprocessing, the user's own weights (their own classes)
        r = replace(r, weights=Path(pretrained).expanduser(), num_classes=None,
                    pretrained_cfg=None)  # fmt: skip
    return r


def _check_hub_names(repo: str, arch_name: str, cache_dir: Any) -> None:
    """The repository's config.json must name the architecture asked for (a renamed or
    wrong mirror would otherwise load into the wrong network, or fail tensor by tensor)."""
    from effnet.pretrained.fetch import CONFIG, hub_file

    path = hub_file(repo, CONFIG, cache_dir=cache_dir, required=False)
    if path is None:
        return
    named = str(_read_json(path).get("architecture", "")).partition(".")[0]
    if named and named != arch_name:
        raise EffnetError(
            f"hf-hub:{repo} config.json names architecture {named!r}, not {arch_name!r}: "
            "the repository does not hold these weights"
        )


def with_cfg(arch: Architecture, cfg: dict[str, Any], overrides: dict[str, Any]) -> Architecture:
    """The architecture with the weights' preprocessing (timm's pretrained_cfg fields),
    except the fields the caller set."""
    fields: dict[str, Any] = {}
    size = cfg.get("input_size")
    if not (size is None or (isinstance(size, (list, tuple)) and len(size) == 3
                             and all(isinstance(v, int) and v > 0 for v in size))):  # fmt: skip
        raise EffnetError(f"pretrained_cfg input_size must be [C, H, W], got {size!r}")
    if size and overrides.get("resolution") is None and overrides.get("resolution_mult") is None:
        fields["resolution"] = int(size[-1])
    for key in ("crop_pct", "interpolation", "mean", "std"):
        if cfg.get(key) is not None and overrides.get(key) is None:
            fields[key] = tuple(cfg[key]) if key in ("mean", "std") else cfg[key]
    return arch.replace(**fields) if fields else arch


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EffnetError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise EffnetError(f"{path} is not a JSON object")
    return data


def from_config(
    config: dict[str, Any], where: str, label: str, overrides: dict[str, Any]
) -> Resolved:
    """A model's ``config.json``: ours (the architecture as an object) or timm's (a name,
    ``model_args``, ``pretrained_cfg``, ``label_names``)."""
    from effnet.weights.format import check_class_names, config_architecture, is_effnet_config

    arch_field = config.get("architecture")
    if is_effnet_config(config):
        arch = config_architecture(config, where)
        if overrides:
            arch = get_arch(arch, **overrides)
        names = check_class_names(config.get("class_names"), _int(config, "num_classes", where),
                                  where)  # fmt: skip
        return Resolved(
            arch, label, source="effnet", num_classes=_int(config, "num_classes", where),
            in_chans=_int(config, "in_chans", where) or 3,
            class_names=tuple(names) if names else None,
        )  # fmt: skip
    if not isinstance(arch_field, str):
        raise EffnetError(f"{where}: no 'architecture' naming a model")
    name = arch_field.partition(".")[0]
    if name not in ARCHITECTURES:
        raise EffnetError(f"{where} names architecture {arch_field!r}, which effnet does not build")
    args = config.get("model_args") or {}
    if not isinstance(args, dict):
        raise EffnetError(f"{where}: model_args must be an object")
    unknown = sorted(set(args) - set(TIMM_ARGS) - {"num_classes", "in_chans", "global_pool",
                                                    "bn_eps"})  # fmt: skip
    if unknown:
        raise EffnetError(f"{where}: model_args {', '.join(unknown)} are not effnet options")
    if args.get("global_pool", "avg") != "avg":
        raise EffnetError(f"{where}: global_pool {args['global_pool']!r} (effnet pools by average)")
    mapped = {TIMM_ARGS[k]: v for k, v in args.items() if k in TIMM_ARGS}
    arch = get_arch(name, **{**mapped, **overrides})
    eps = _number(args.get("bn_eps"), "model_args bn_eps", where)
    if eps is not None:  # a timm model with another batch-norm epsilon
        arch = arch.replace(norm=Norm(eps=eps, momentum=arch.norm.momentum))
    given = config.get("pretrained_cfg") or {}
    if not isinstance(given, dict):
        raise EffnetError(f"{where}: pretrained_cfg must be an object")
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in given.items()}  # as timm
    arch = with_cfg(arch, cfg, overrides)
    n = _int({"num_classes": config.get("num_classes", args.get("num_classes",
             cfg.get("num_classes")))}, "num_classes", where)  # fmt: skip
    chans = _int({"in_chans": config.get("in_chans", args.get("in_chans", 3))}, "in_chans", where)
    names = check_class_names(config.get("label_names"), n, where)
    return Resolved(
        arch, label, source="auto", num_classes=n, in_chans=chans,
        class_names=tuple(names) if names else None, pretrained_cfg=cfg or None, eps=eps,
    )  # fmt: skip


def _number(v: Any, what: str, where: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise EffnetError(f"{where}: {what} must be a number, got {v!r}")
    return float(v)


def _int(config: dict[str, Any], key: str, where: str) -> int | None:
    v = config.get(key)
    if v is None:
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        raise EffnetError(f"{where}: {key!r} is not a number") from None


def _folder(path: Path, pretrained: Any, overrides: dict[str, Any]) -> Resolved:
    """A saved model, a run folder (its ``model/``) or a timm hub folder: always with its
    weights (a folder is a model, not a description)."""
    if not (path / "config.json").is_file() and (path / "model" / "config.json").is_file():
        path = path / "model"  # a training run: its exported best model
    if not (path / "config.json").is_file():
        raise EffnetError(f"{path}: not a model folder (no config.json)")
    if pretrained not in (None, False, True):
        raise EffnetError(f"{path} is a saved model: pretrained=PATH does not apply")
    r = from_config(_read_json(path / "config.json"), str(path / "config.json"), path.name,
                    overrides)  # fmt: skip
    return replace(r, weights=path)


def _hub(
    repo_spec: str, pretrained: Any, cache_dir: Any, revision: str | None,
    overrides: dict[str, Any],
) -> Resolved:  # fmt: skip
    from effnet.pretrained.fetch import CONFIG, hub_file, hub_weights, split_repo

    repo, rev = split_repo(repo_spec)
    rev = revision or rev
    config_path = hub_file(repo, CONFIG, rev, cache_dir)
    assert config_path is not None  # required=True raises instead
    label = repo.split("/")[-1]
    r = from_config(_read_json(config_path), f"hf-hub:{repo} config.json", label, overrides)
    if pretrained is True:
        path = hub_weights(repo, rev, cache_dir)
        if r.source == "effnet":  # ours: the snapshot folder (its epsilon and padding too)
            path = path.parent
        r = replace(r, weights=path)
    elif pretrained:
        r = replace(r, weights=Path(pretrained).expanduser())
    return r
