"""Downloads of published weights into the standard caches, checked before any use.

Hub repositories go through ``huggingface_hub.hf_hub_download`` and so its cache
(``HF_HOME``, ``HF_HUB_CACHE`` or ``cache_dir=``; ``models--ORG--REPO/{blobs,refs,
snapshots}``), its progress bars, its resumable ``.incomplete`` files and its offline mode.
``HF_ENDPOINT`` (a mirror, a private hub) and ``HF_HUB_OFFLINE`` are read when a download
is asked for, not when Python imported huggingface_hub, so setting them in a running
process works. A file from the hub is verified against the hash its cache entry is named
by (sha256 for LFS files, the git blob id for small ones): a corrupt or truncated blob is
deleted, never loaded, and the next call downloads it again.

URLs (torchvision's weights) go through ``torch.hub.download_url_to_file`` into torch.hub's
cache (``$TORCH_HOME/hub/checkpoints``), the hash prefix in the file name checked.

Nothing here runs at import, and nothing reads a file's contents as code.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from effnet.errors import EffnetError, is_internal
from effnet.io import sha256_of

SAFETENSORS, PICKLE, CONFIG = "model.safetensors", "pytorch_model.bin", "config.json"
_TRUE = {"1", "true", "yes", "on"}


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def endpoint() -> str | None:
    return os.environ.get("HF_ENDPOINT") or None


def hub_cache(cache_dir: str | Path | None = None) -> Path:
    """Where hub downloads go: ``cache_dir``, else ``HF_HUB_CACHE``, else ``HF_HOME/hub``
    (default ``~/.cache/huggingface/hub``), read now."""
    if cache_dir:
        return Path(cache_dir)
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return Path(home) / "hub"


def split_repo(spec: str) -> tuple[str, str | None]:
    """``ORG/REPO`` or ``ORG/REPO@REVISION`` -> (repo id, revision)."""
    repo, _, rev = spec.partition("@")
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo):
        raise EffnetError(f"not a hub repository id: {spec!r} (expected ORG/REPO[@REVISION])")
    return repo, (rev or None)


def _blob_ok(path: Path) -> bool:
    """Whether the cached file has the content its blob name (the hub's ETag) promises."""
    real = path.resolve()
    name = real.name
    if re.fullmatch(r"[0-9a-f]{64}", name):  # an LFS file: its sha256
        h = hashlib.sha256()
        prefix = b""
    elif re.fullmatch(r"[0-9a-f]{40}", name):  # a git blob: sha1 of "blob SIZE\0" + content
        h = hashlib.sha1()
        prefix = b"blob %d\0" % real.stat().st_size
    else:
        return True  # not a hub cache blob (a local_dir copy): nothing to check against
    h.update(prefix)
    with open(real, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest() == name


def _forget(path: Path) -> None:
    """Delete a cached file and its blob, so that nothing uses it again."""
    real = path.resolve()
    for p in (path, real):
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def hub_file(
    repo: str,
    filename: str,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    required: bool = True,
) -> Path | None:
    """One file of a hub repository, downloaded (with progress) or from the cache.

    ``required=False``: None when the repository has no such file (any other failure is
    an error). Raises a one-line ``EffnetError`` naming the repository and what to do."""
    import huggingface_hub as hf
    from huggingface_hub import constants, errors

    where = f"{repo}@{revision}" if revision else repo
    # huggingface_hub reads HF_HUB_OFFLINE once, at its import; follow the variable now
    constants.HF_HUB_OFFLINE = offline()
    try:
        got = hf.hf_hub_download(
            repo,
            filename,
            revision=revision,
            cache_dir=hub_cache(cache_dir),
            local_files_only=offline(),
            endpoint=endpoint(),
            library_name="effnet",
        )
    except errors.LocalEntryNotFoundError:
        if not required and offline():
            return None  # offline: the caller says what was missing
        if offline():
            raise EffnetError(
                f"hub repository {where} has no cached {filename} and HF_HUB_OFFLINE is set: "
                f"download it once with network (unset HF_HUB_OFFLINE, or run `hf download "
                f"{repo}`), or point HF_HUB_CACHE at a cache that holds it"
            ) from None
        raise EffnetError(
            f"cannot reach the hub for {where} ({filename}) and nothing is cached: check the "
            "network or HF_ENDPOINT, or set HF_HUB_CACHE to a cache that holds it"
        ) from None
    except errors.RevisionNotFoundError:
        raise EffnetError(f"hub repository {repo} has no revision {revision!r}") from None
    except errors.RepositoryNotFoundError:
        raise EffnetError(
            f"hub repository {repo} not found (or private: log in with `hf auth login`)"
        ) from None
    except errors.EntryNotFoundError:
        if not required:
            return None
        raise EffnetError(f"hub repository {where} has no file {filename}") from None
    except errors.HfHubHTTPError as e:
        raise EffnetError(f"hub download of {where}/{filename} failed: {e}") from None
    except (OSError, ValueError) as e:  # size check, disk full, a bad cache folder
        raise EffnetError(f"hub download of {where}/{filename} failed: {e}") from None
    except Exception as e:  # the HTTP library's own errors once its retries are spent
        if is_internal(e):
            raise
        raise EffnetError(
            f"hub download of {where}/{filename} failed ({type(e).__name__}: {e})"
        ) from None
    path = Path(got)
    if not _blob_ok(path):
        _forget(path)
        raise EffnetError(
            f"the download of {where}/{filename} is corrupt (its hash does not match the "
            "hub's); it was deleted from the cache, so the next try downloads it again"
        )
    return path


def hub_weights(
    repo: str, revision: str | None = None, cache_dir: str | Path | None = None
) -> Path:
    """A repository's weights file: ``model.safetensors``, else ``pytorch_model.bin`` (read
    later only through ``torch.load(weights_only=True)``)."""
    for name in (SAFETENSORS, PICKLE):
        path = hub_file(repo, name, revision, cache_dir, required=False)
        if path is not None:
            return path
    where = f"{repo}@{revision}" if revision else repo
    if offline():
        raise EffnetError(
            f"hub repository {where} has no cached weights ({SAFETENSORS} or {PICKLE}) and "
            f"HF_HUB_OFFLINE is set: download them once with network (unset HF_HUB_OFFLINE, "
            f"or run `hf download {repo}`), or point HF_HUB_CACHE at a cache that holds them"
        )
    raise EffnetError(f"hub repository {where} holds no weights ({SAFETENSORS} or {PICKLE})")


def url_file(url: str, cache_dir: str | Path | None = None) -> Path:
    """A weights file from a URL in torch.hub's cache; a file name like
    ``efficientnet_b0_rwightman-7f5810bc.pth`` carries a sha256 prefix, checked."""
    from urllib.error import URLError
    from urllib.parse import urlparse

    import torch.hub

    folder = Path(cache_dir) if cache_dir else Path(torch.hub.get_dir()) / "checkpoints"
    name = os.path.basename(urlparse(url).path)
    target = folder / name
    m = re.search(r"-([a-f0-9]{6,})\.", name)
    if target.is_file():
        if m is None or sha256_of(target).startswith(m.group(1)):
            return target
        target.unlink()  # a corrupt cached copy: fetch it again
    if offline():
        raise EffnetError(
            f"{name} is not in torch.hub's cache ({folder}) and HF_HUB_OFFLINE is set: "
            f"download {url} into that folder"
        )
    folder.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(target), m.group(1) if m else None, progress=True)
    except RuntimeError as e:  # the hash check
        target.unlink(missing_ok=True)
        raise EffnetError(f"the download of {url} is corrupt ({e}); nothing was kept") from None
    except (URLError, OSError) as e:
        raise EffnetError(f"cannot download {url}: {e}") from None
    return target
