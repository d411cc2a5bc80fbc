"""Stand-ins for the Hugging Face hub, for tests that run offline.

``write_cache`` builds a hub cache in the standard layout (``models--ORG--REPO/blobs``
named by each file's ETag, ``snapshots/COMMIT/`` links into them, ``refs/REVISION``);
``HubServer`` is an HTTP server on 127.0.0.1 answering ``huggingface_hub``'s requests
(``HEAD``/``GET /ORG/REPO/resolve/REVISION/FILE`` with ``X-Repo-Commit``, ``ETag`` and
``Range``), for ``HF_ENDPOINT``.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path


def etag(data: bytes, lfs: bool) -> str:
    """The hub's ETag: an LFS file's sha256, a git file's blob id."""
    if lfs:
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def is_lfs(name: str) -> bool:
    return not name.endswith((".json", ".txt", ".md"))


def write_cache(cache: Path, repo: str, files: dict[str, bytes], revision: str = "main",
                commit: str = "0" * 39 + "1") -> Path:  # fmt: skip
    """``files`` in ``cache`` as hf_hub_download leaves them; returns the snapshot folder."""
    root = cache / ("models--" + repo.replace("/", "--"))
    snap = root / "snapshots" / commit
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    snap.mkdir(parents=True, exist_ok=True)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / revision).write_text(commit)
    for name, data in files.items():
        blob = root / "blobs" / etag(data, is_lfs(name))
        blob.write_bytes(data)
        link = snap / name
        if link.exists() or link.is_symlink():
            link.unlink()
        os.symlink(os.path.relpath(blob, snap), link)
    return snap


@dataclass
class Repo:
    files: dict[str, bytes]
    commit: str
    corrupt: set[str] = field(default_factory=set)  # served with wrong bytes, right size
    truncated: set[str] = field(default_factory=set)  # GET sends half of the file
    dropped: set[str] = field(default_factory=set)  # the next GET stops halfway, then works


class HubServer:
    """``repos[(repo, revision)]``: what the hub holds; ``log``: (method, path, range)."""

    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], Repo] = {}
        self.log: list[tuple[str, str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, body: bool) -> None:
                server.log.append((self.command, self.path, self.headers.get("Range")))
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return self._status(404, "RepoNotFound")
                repo, rev, name = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                entry = server.repos.get((repo, rev))
                if entry is None:
                    known = any(r == repo for r, _ in server.repos)
                    return self._status(404, "RevisionNotFound" if known else "RepoNotFound")
                if name not in entry.files:
                    return self._status(404, "EntryNotFound")
                data = entry.files[name]
                tag = etag(data, is_lfs(name))
                if body and name in entry.corrupt:
                    data = bytes(len(data))
                start = 0
                rng = self.headers.get("Range")
                if body and rng and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0])
                sent = data[start:]
                drop = body and name in entry.dropped
                if body and name in entry.truncated:
                    sent = sent[: len(sent) // 2]
                self.send_response(206 if start else 200)
                self.send_header("X-Repo-Commit", entry.commit)
                self.send_header("ETag", f'"{tag}"')
                self.send_header("Content-Length", str(len(sent) if body else len(data)))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if drop:  # the connection breaks halfway through the body
                    entry.dropped.discard(name)
                    self.wfile.write(sent[: len(sent) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if body:
                    self.wfile.write(sent)

            def _status(self, code: int, error: str) -> None:
                self.send_response(code)
                self.send_header("X-Error-Code", error)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_HEAD(self) -> None:  # noqa: N802
                self._answer(body=False)

            def do_GET(self) -> None:  # noqa: N802
                self._answer(body=True)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> HubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def gets(self, name: str) -> list[tuple[str, str, str | None]]:
        return [e for e in self.log if e[0] == "GET" and e[1].endswith("/" + name)]
