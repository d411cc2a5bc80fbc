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

FILES = fashion_mnist.FILES

SYSTEM = fashion_mnist.SYSTEM_DIR
FIXTURE = Path(__file__).parent / "fixtures" / "fashion-mnist"
needs_files = pytest.mark.skipif(
    fashion_mnist.find_files(SYSTEM) is None,
    reason="the full dataset is not installed (apt-get install dataset-fashion-mnist)",
)


def test_tests_read_the_shipped_slice_by_default():
    """conftest points EFFNET_FASHION_MNIST_DIR at the fixture: no test needs the full files."""
    assert fashion_mnist.explicit_dir(None) == FIXTURE
    train_x, train_y, test_x, test_y = fashion_mnist.load_arrays()
    assert train_x.shape == (1000, 28, 28) and train_x.dtype == np.uint8
    assert test_x.shape == (300, 28, 28)
    assert np.bincount(train_y).tolist() == [100] * 10
    assert np.bincount(test_y).tolist() == [30] * 10
    assert train_y[0] == 9 and test_y[0] == 9  # the official files start with an ankle boot
    size = sum(p.stat().st_size for p in FIXTURE.iterdir())
    assert size < 700_000 and "MIT" in (FIXTURE / "README.md").read_text()


@needs_files
def test_real_files_parse_to_the_published_sizes_and_class_counts():
    train_x, train_y, test_x, test_y = fashion_mnist.load_arrays(SYSTEM)
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
def test_fixture_is_the_first_images_of_each_class_of_the_real_files():
    full = fashion_mnist.load_arrays(SYSTEM)
    part = fashion_mnist.load_arrays(FIXTURE)
    for (x, y), (px, py), n in (
        ((full[0], full[1]), part[:2], 100),
        ((full[2], full[3]), part[2:], 30),
    ):
        keep = np.sort(np.concatenate([np.flatnonzero(y == c)[:n] for c in range(10)]))
        assert np.array_equal(x[keep], px) and np.array_equal(y[keep], py)


def test_load_splits_carves_a_stratified_minival_from_train():
    splits = load_splits(DataSpec(minival=200))
    assert (len(splits.train), len(splits.minival), len(splits.test)) == (800, 200, 300)
    assert (splits.num_classes, splits.in_chans) == (10, 1)
    assert splits.class_names[0] == "T-shirt/top" and splits.class_names[9] == "Ankle boot"
    minival_labels = np.array([splits.minival[i][1] for i in range(len(splits.minival))])
    assert np.bincount(minival_labels).tolist() == [20] * 10
    image, label = splits.test[0]
    assert image.shape == (1, 28, 28) and str(image.dtype) == "torch.uint8" and label == 9
    assert splits.bad_files == []


def test_subset_is_stratified_and_taken_after_minival():
    splits = load_splits(DataSpec(minival=100, subset=300, seed=3))
    assert len(splits.train) == 300 and len(splits.minival) == 100
    train_idx = set(splits.train.indices)
    assert not train_idx & set(splits.minival.indices)
    full = load_splits(DataSpec(minival=100, seed=3))
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
    assert "\n" not in msg and "train-labels-idx1-ubyte.gz" in msg
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
    assert "\n" not in msg and f"127.0.0.1:{port}" in msg


def test_download_from_a_file_url(tmp_path):
    src = tmp_path / "mirror"
    src.mkdir()
    sums = _fake_files(src)
    files = fashion_mnist.download(tmp_path / "cache", src.as_uri(), checksums=sums)
    assert fashion_mnist.read_idx(files["train-images-idx3-ubyte"]).tolist() == [0]


# -- lookup order ----------------------------------------------------------------------------


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """Every location empty, no explicit folder, apt unavailable, downloads refused."""
    monkeypatch.delenv(fashion_mnist.DIR_ENV, raising=False)
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "system")
    monkeypatch.setattr(fashion_mnist, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(fashion_mnist, "apt_available", lambda: False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(fashion_mnist.URL_ENV, f"http://127.0.0.1:{port}/")
    return tmp_path


def _assert_three_ways(msg: str) -> None:
    assert "\n" not in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "effnet data" in msg and "--data-dir" in msg


def test_empty_locations_without_fetching_say_the_three_ways_in_one_line(nowhere):
    with pytest.raises(EffnetError, match="Fashion-MNIST not found") as e:
        load_splits(DataSpec())
    msg = str(e.value)
    _assert_three_ways(msg)
    assert str(nowhere / "system") in msg and str(nowhere / "cache") in msg


def test_empty_locations_with_fetching_report_why_the_download_failed(nowhere):
    with pytest.raises(EffnetError, match="cannot download") as e:
        fashion_mnist.locate(allow_download=True)
    _assert_three_ways(str(e.value))


def test_an_explicit_folder_without_the_files_is_an_error_not_a_fallback(nowhere):
    shutil.copytree(FIXTURE, nowhere / "system")  # a valid copy exists elsewhere
    with pytest.raises(EffnetError, match="files not found in") as e:
        load_splits(DataSpec(data_dir=str(nowhere / "mine")))
    assert str(nowhere / "mine") in str(e.value)
    _assert_three_ways(str(e.value))


def test_lookup_order_explicit_then_system_then_cache(nowhere, monkeypatch):
    shutil.copytree(FIXTURE, nowhere / "cache")
    assert fashion_mnist.locate()[FILES[0]].parent == nowhere / "cache"
    shutil.copytree(FIXTURE, nowhere / "system")
    assert fashion_mnist.locate()[FILES[0]].parent == nowhere / "system"
    shutil.copytree(FIXTURE, nowhere / "mine")
    monkeypatch.setenv(fashion_mnist.DIR_ENV, str(nowhere / "mine"))
    assert fashion_mnist.locate()[FILES[0]].parent == nowhere / "mine"
    shutil.copytree(FIXTURE, nowhere / "arg")
    assert fashion_mnist.locate(nowhere / "arg")[FILES[0]].parent == nowhere / "arg"


def test_fetching_installs_the_debian_package_before_downloading(nowhere, monkeypatch):
    calls = []

    def fake_install():
        calls.append("apt")
        shutil.copytree(FIXTURE, nowhere / "system")

    monkeypatch.setattr(fashion_mnist, "apt_available", lambda: True)
    monkeypatch.setattr(fashion_mnist, "install_debian_package", fake_install)
    with pytest.raises(EffnetError):
        fashion_mnist.locate()  # no fetching: apt is not run
    assert calls == []
    assert fashion_mnist.locate(allow_download=True)[FILES[0]].parent == nowhere / "system"
    assert calls == ["apt"]


def test_a_failed_apt_install_falls_back_to_the_download(nowhere, monkeypatch, serve):
    root, url = serve
    sums = _fake_files(root)

    def broken_install():
        raise EffnetError("apt-get install dataset-fashion-mnist failed (no such package)")

    monkeypatch.setattr(fashion_mnist, "apt_available", lambda: True)
    monkeypatch.setattr(fashion_mnist, "install_debian_package", broken_install)
    monkeypatch.setattr(fashion_mnist, "GZ_SHA256", sums)
    monkeypatch.setenv(fashion_mnist.URL_ENV, url)
    found = fashion_mnist.locate(allow_download=True)
    assert found[FILES[0]].parent == nowhere / "cache"


def test_effnet_data_command_reports_where_the_files_are(capsys):
    from effnet.cli import main

    assert main(["data"]) == 0
    assert str(FIXTURE) in capsys.readouterr().out


def test_effnet_data_command_fails_in_one_line_when_nothing_works(nowhere, capsys):
    from effnet.cli import main

    assert main(["data"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    # what it tried, as it tries it, then the error on one line
    assert lines[0].startswith("effnet: downloading Fashion-MNIST") and len(lines) == 2
    assert lines[1].startswith("effnet: error:")
    _assert_three_ways(lines[1])


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
    monkeypatch.setattr(fashion_mnist, "apt_available", lambda: False)
    monkeypatch.delenv(fashion_mnist.DIR_ENV)
    monkeypatch.setenv(fashion_mnist.URL_ENV, url)
    splits = load_splits(DataSpec(download=True, minival=100))
    assert len(splits.test) == 10000 and len(splits.train) == 59900
    assert (tmp_path / "cache" / "train-images-idx3-ubyte.gz").is_file()
