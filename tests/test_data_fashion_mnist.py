"""Fashion-MNIST: the real Debian IDX files, the IDX parser, and the checksummed download."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import shutil
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from effnet.data import DataSpec, fashion_mnist, load_splits
from effnet.errors import EffnetError

SYSTEM = fashion_mnist.SYSTEM_DIR
needs_files = pytest.mark.skipif(
    fashion_mnist.find_files(SYSTEM) is None,
    reason="apt-get install dataset-fashion-mnist",
)


@needs_files
def test_real_files_parse_to_the_published_sizes_and_class_counts():
    train_x, train_y, test_x, test_y = fashion_mnist.load_arrays()
    assert train_x.shape == (60000, 28, 28) and train_x.dtype == np.uint8
    assert test_x.shape == (10000, 28, 28)
    assert np.bincount(train_y).tolist() == [6000] * 10
    assert np.bincount(test_y).tolist() == [1000] * 10
    # pixel statistics quoted in fashion_mnist.MEAN / STD
    sample = train_x[::7].astype(np.float32) / 255
    assert sample.mean() == pytest.approx(fashion_mnist.MEAN[0], abs=2e-3)
    assert sample.std() == pytest.approx(fashion_mnist.STD[0], abs=2e-3)
    # first training label of the official file is 9 (ankle boot), first test label 9 too
    assert train_y[0] == 9 and test_y[0] == 9


@needs_files
def test_load_splits_carves_a_stratified_minival_from_train():
    splits = load_splits(DataSpec(minival=5000))
    assert (len(splits.train), len(splits.minival), len(splits.test)) == (55000, 5000, 10000)
    assert (splits.num_classes, splits.in_chans) == (10, 1)
    assert splits.class_names[0] == "T-shirt/top" and splits.class_names[9] == "Ankle boot"
    minival_labels = np.array([splits.minival[i][1] for i in range(len(splits.minival))])
    assert np.bincount(minival_labels).tolist() == [500] * 10
    image, label = splits.test[0]
    assert image.shape == (1, 28, 28) and str(image.dtype) == "torch.uint8" and label == 9
    assert splits.bad_files == []


@needs_files
def test_subset_is_stratified_and_taken_after_minival():
    splits = load_splits(DataSpec(minival=1000, subset=2000, seed=3))
    assert len(splits.train) == 2000 and len(splits.minival) == 1000
    train_idx = set(splits.train.indices)
    assert not train_idx & set(splits.minival.indices)
    full = load_splits(DataSpec(minival=1000, seed=3))
    assert splits.minival.indices == full.minival.indices


def test_raw_and_gz_idx_files_read_alike(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    raw = b"\x00\x00\x08\x01" + (10).to_bytes(4, "big") + labels.tobytes()
    (tmp_path / "l").write_bytes(raw)
    (tmp_path / "l.gz").write_bytes(gzip.compress(raw))
    assert fashion_mnist.read_idx(tmp_path / "l").tolist() == list(range(10))
    assert fashion_mnist.read_idx(tmp_path / "l.gz").tolist() == list(range(10))


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x01\x02\x08\x01" + (3).to_bytes(4, "big") + b"abc", "bad magic"),
        (b"\x00\x00\x08\x03\x00", "truncated in its header"),
        (b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + b"abc", "implies 13"),
    ],
)
def test_malformed_idx_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "broken-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(EffnetError, match=message) as e:
        fashion_mnist.read_idx(path)
    assert str(path) in str(e.value)


# -- download -------------------------------------------------------------------------------


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def serve(tmp_path):
    """Serve a folder on 127.0.0.1; returns (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _fake_files(folder: Path) -> dict[str, str]:
    sums = {}
    for i, stem in enumerate(fashion_mnist.FILES):
        data = gzip.compress(b"\x00\x00\x08\x01" + (1).to_bytes(4, "big") + bytes([i]))
        (folder / f"{stem}.gz").write_bytes(data)
        sums[stem] = hashlib.sha256(data).hexdigest()
    return sums


def test_download_verifies_checksums_and_skips_valid_files(serve, tmp_path):
    root, url = serve
    sums = _fake_files(root)
    dest = tmp_path / "cache"
    files = fashion_mnist.download(dest, url, checksums=sums)
    assert sorted(p.name for p in dest.iterdir()) == sorted(f"{s}.gz" for s in sums)
    assert fashion_mnist.read_idx(files["t10k-images-idx3-ubyte"]).tolist() == [2]
    for f in root.iterdir():
        f.unlink()  # a second call must not touch the network for valid files
    fashion_mnist.download(dest, url, checksums=sums)


def test_download_checksum_mismatch_keeps_no_file(serve, tmp_path):
    root, url = serve
    sums = _fake_files(root)
    sums["train-labels-idx1-ubyte"] = "0" * 64
    dest = tmp_path / "cache"
    with pytest.raises(EffnetError, match="checksum mismatch") as e:
        fashion_mnist.download(dest, url, checksums=sums)
    msg = str(e.value)
    assert "\n" not in msg and "train-labels-idx1-ubyte.gz" in msg and str(dest) in msg
    assert not (dest / "train-labels-idx1-ubyte.gz").exists()
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]


def test_download_unreachable_fails_fast_with_one_line(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dest = tmp_path / "cache"
    with pytest.raises(EffnetError, match="cannot download") as e:
        fashion_mnist.download(dest, f"http://127.0.0.1:{port}/", timeout=5)
    msg = str(e.value)
    assert "\n" not in msg and "put the 4 files" in msg and "dataset-fashion-mnist" in msg


def test_download_from_a_file_url(tmp_path):
    src = tmp_path / "mirror"
    src.mkdir()
    sums = _fake_files(src)
    files = fashion_mnist.download(tmp_path / "cache", src.as_uri(), checksums=sums)
    assert fashion_mnist.read_idx(files["train-images-idx3-ubyte"]).tolist() == [0]


def test_missing_files_without_download_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "none")
    monkeypatch.setattr(fashion_mnist, "CACHE_DIR", tmp_path / "cache")
    with pytest.raises(EffnetError, match="Fashion-MNIST not found") as e:
        load_splits(DataSpec(data_dir=str(tmp_path / "mine")))
    assert "\n" not in str(e.value) and str(tmp_path / "mine") in str(e.value)


@needs_files
def test_download_end_to_end_through_load_splits(serve, tmp_path, monkeypatch):
    """Serve the real files locally; load_splits(download=True) fetches, verifies, parses."""
    root, url = serve
    sums = {}
    for stem in fashion_mnist.FILES:
        shutil.copy(SYSTEM / f"{stem}.gz", root)
        sums[stem] = fashion_mnist.sha256_of(root / f"{stem}.gz")
    monkeypatch.setattr(fashion_mnist, "GZ_SHA256", sums)
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "none")
    monkeypatch.setattr(fashion_mnist, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setenv(fashion_mnist.URL_ENV, url)
    splits = load_splits(DataSpec(download=True, minival=100))
    assert len(splits.test) == 10000 and len(splits.train) == 59900
    assert (tmp_path / "cache" / "train-images-idx3-ubyte.gz").is_file()
