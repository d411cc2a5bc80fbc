"""Every sub-command through bad input: one line on stderr, no traceback, exit 2, nothing changed.

The table runs ``effnet.cli.main`` in-process (fast); two cases run ``python -m effnet`` to
prove the exit status of the real command. Each case hashes the workspace before and after:
a refused command may not change, remove or add a file.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

from effnet.cli import build_parser, main
from effnet.errors import EffnetError
from effnet.weights import save_pretrained

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = os.geteuid() == 0  # root reads chmod-000 files: those cases cannot be built


def _png_header(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def _arch(**changes: object) -> str:
    from effnet.registry import get_arch

    return json.dumps({**get_arch("efficientnet_b0").to_dict(), **changes})


def _study(**changes: object) -> str:
    base = {"name": "s", "data": {"subset": 100}, "budget": None, "sweeps": {"width": [1.0]}}
    return json.dumps({**base, **changes})


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("bad")
    (d / "dir.json").mkdir()
    (d / "folder").mkdir()
    (d / "nonutf8.json").write_bytes(b'\xff\xfe{"name": "\xe9"}')
    (d / "truncated.json").write_text('{"name": "x", "stages": [{"block": "mbc')
    (d / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (d / "list.json").write_text("[1, 2, 3]")
    (d / "text.pth").write_text("hello, I am not a checkpoint\n")
    (d / "text.txt").write_text("hello\n")
    (d / "garbage.onnx").write_bytes(b"\x08\x07garbage that is no protobuf" * 10)
    (d / "bomb.png").write_bytes(_png_header(30000, 30000))
    (d / "long.png").write_bytes(_png_header(1, 1_000_000))
    (d / "empty.png").write_bytes(b"")
    (d / "bombs").mkdir()
    (d / "bombs" / "bomb.png").write_bytes(_png_header(30000, 30000))
    (d / "bombs" / "long.png").write_bytes(_png_header(1, 1_000_000))
    (d / "classes_bad.txt").write_bytes(b"cat\n\xff\xfedog\n")
    Image.new("RGB", (40, 30), (200, 30, 30)).save(d / "ok.png")
    stage = {"block": "mbconv", "kernel": 3, "stride": 1, "out_channels": 16}
    (d / "layers.json").write_text(_arch(stages=[{**stage, "layers": 100_000_000}]))
    (d / "std0.json").write_text(_arch(std=[0.229, 0.0, 0.225]))
    (d / "mean2.json").write_text(_arch(mean=[0.5, 0.5]))
    (d / "interp.json").write_text(_arch(interpolation="fancy"))
    (d / "seeds.json").write_text(_study(seeds=[0.5]))
    (d / "datastr.json").write_text(_study(data="fashion-mnist"))
    (d / "wd.json").write_text(_study(recipe_overrides={"weight_decay": -1}))
    (d / "recipe_nan.json").write_text('{"epochs": NaN}')
    for split in ("train", "val"):
        (d / "oneclass" / split / "cat").mkdir(parents=True)
        Image.new("RGB", (40, 30)).save(d / "oneclass" / split / "cat" / "0.png")
    run = d / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "run.json").write_bytes(b"\xff\xfe not json")
    (d / "existing.onnx").write_text("a user's file\n")
    from effnet.hub import create_model

    rgb = create_model("efficientnet_b0", num_classes=10, width=0.25, resolution=32)
    save_pretrained(rgb, d / "rgb10")
    (d / "unreadable.json").write_text(_arch())
    (d / "unreadable.json").chmod(0)
    return d


# (id, argv); "{d}" is the workspace. Every one must end in one line and exit 2.
CASES = [
    ("no-command", []),
    ("unknown-flag", ["models", "--bogus"]),
    # describe / scale: architecture files and numbers
    ("describe-missing", ["describe", "{d}/missing.json"]),
    ("describe-dir-for-file", ["describe", "{d}/dir.json"]),
    ("describe-non-utf8", ["describe", "{d}/nonutf8.json"]),
    ("describe-truncated", ["describe", "{d}/truncated.json"]),
    ("describe-deep-json", ["describe", "{d}/deep.json"]),
    ("describe-not-object", ["describe", "{d}/list.json"]),
    ("describe-layers-1e8", ["describe", "{d}/layers.json"]),
    ("describe-std-0", ["describe", "{d}/std0.json"]),
    ("describe-mean-len-2", ["describe", "{d}/mean2.json"]),
    ("describe-interpolation", ["describe", "{d}/interp.json"]),
    ("describe-depth-1e4", ["describe", "efficientnet_b0", "--depth", "1e4"]),
    ("describe-depth-1e6", ["describe", "efficientnet_b0", "--depth", "1e6"]),
    ("describe-depth-1e308", ["describe", "efficientnet_b0", "--depth", "1e308"]),
    ("describe-width-1e6", ["describe", "efficientnet_b0", "--width", "1e6"]),
    ("describe-phi-1e9", ["describe", "efficientnet_b0", "--phi", "1e9"]),
    ("describe-phi-nan", ["describe", "efficientnet_b0", "--phi", "nan"]),
    ("describe-depth-neg", ["describe", "efficientnet_b0", "--depth", "-1"]),
    ("describe-width-inf", ["describe", "efficientnet_b0", "--width", "inf"]),
    ("describe-size-0", ["describe", "efficientnet_b0", "--image-size", "0"]),
    ("describe-size-1e5", ["describe", "efficientnet_b0", "--image-size", "100000"]),
    ("describe-save-onto-dir", ["describe", "efficientnet_b0", "--save", "{d}/folder", "--force"]),
    ("scale-phi-1e9", ["scale", "--phi", "1e9"]),
    ("scale-alpha-nan", ["scale", "--phi", "1", "--alpha", "nan"]),
    ("scale-tolerance-nan", ["scale", "--phi", "1", "--tolerance", "nan"]),
    ("scale-budget-neg", ["scale", "--budget-flops", "-5"]),
    ("scale-budget-nan", ["scale", "--budget-params", "nan"]),
    ("scale-non-utf8", ["scale", "{d}/nonutf8.json", "--phi", "1"]),
    ("bench-missing", ["bench", "{d}/missing.json", "--rounds", "1"]),
    ("data-missing", ["data", "--data-dir", "{d}/missing", "--no-fetch"]),
    # export / predict / cam
    ("export-missing", ["export", "{d}/missing.json", "--out", "{d}/o.onnx"]),
    ("export-exists", ["export", "efficientnet_b0", "--out", "{d}/existing.onnx"]),
    ("export-size-1e5", ["export", "efficientnet_b0", "--image-size", "100000",
                         "--out", "{d}/o.onnx"]),  # fmt: skip
    ("export-opset", ["export", "efficientnet_b0", "--opset", "99", "--out", "{d}/o.onnx"]),
    ("export-text-weights", ["export", "efficientnet_b0", "--weights", "{d}/text.pth",
                             "--out", "{d}/o.onnx"]),  # fmt: skip
    ("predict-missing-image", ["predict", "efficientnet_b0", "{d}/missing.png"]),
    ("predict-dir-for-image", ["predict", "efficientnet_b0", "{d}/folder"]),
    ("predict-empty-image", ["predict", "efficientnet_b0", "{d}/empty.png"]),
    ("predict-bomb", ["predict", "efficientnet_b0", "{d}/bomb.png", "{d}/long.png"]),
    ("predict-classes-0", ["predict", "efficientnet_b0", "{d}/ok.png", "--num-classes", "0"]),
    ("predict-classes-1e9", ["predict", "efficientnet_b0", "{d}/ok.png", "--num-classes", "1e9"]),
    ("predict-classes-huge", ["predict", "efficientnet_b0", "{d}/ok.png",
                              "--num-classes", "1000000000"]),  # fmt: skip
    ("predict-size-1e5", ["predict", "efficientnet_b0", "{d}/ok.png", "--image-size", "100000"]),
    ("predict-width-1e6", ["predict", "efficientnet_b0", "{d}/ok.png", "--width", "1e6"]),
    ("predict-top-k-0", ["predict", "efficientnet_b0", "{d}/ok.png", "--top-k", "0"]),
    ("predict-classes-non-utf8", ["predict", "efficientnet_b0", "{d}/ok.png",
                                  "--classes", "{d}/classes_bad.txt"]),  # fmt: skip
    ("predict-corrupt-onnx", ["predict", "{d}/garbage.onnx", "{d}/ok.png"]),
    ("predict-std-0", ["predict", "{d}/std0.json", "{d}/ok.png"]),
    ("cam-bomb", ["cam", "efficientnet_b0", "{d}/bomb.png", "--out", "{d}/cams"]),
    ("cam-out-is-file", ["cam", "efficientnet_b0", "{d}/ok.png", "--out", "{d}/text.txt"]),
    ("cam-opacity-nan", ["cam", "efficientnet_b0", "{d}/ok.png", "--out", "{d}/cams",
                         "--opacity", "nan"]),  # fmt: skip
    ("quantize-missing", ["quantize", "{d}/missing", "--calib", "{d}/folder",
                          "--out", "{d}/q.onnx"]),
    ("quantize-exists", ["quantize", "{d}/rgb10", "--calib", "{d}/folder",
                         "--out", "{d}/existing.onnx"]),
    ("quantize-agreement-nan", ["quantize", "{d}/rgb10", "--calib", "{d}/folder",
                                "--out", "{d}/q.onnx", "--target-agreement", "nan"]),
    ("quantize-no-images", ["quantize", "{d}/rgb10", "--calib", "{d}/folder",
                            "--out", "{d}/q.onnx"]),
    ("quantize-bomb-only", ["quantize", "{d}/rgb10", "--calib", "{d}/bombs",
                            "--out", "{d}/q.onnx"]),
    # study / search-coefficients
    ("study-missing", ["study", "{d}/missing.json"]),
    ("study-non-utf8", ["study", "{d}/nonutf8.json"]),
    ("study-deep-json", ["study", "{d}/deep.json"]),
    ("study-seeds-float", ["study", "{d}/seeds.json", "--out", "{d}/st"]),
    ("study-data-string", ["study", "{d}/datastr.json", "--out", "{d}/st"]),
    ("study-weight-decay", ["study", "{d}/wd.json", "--out", "{d}/st"]),
    ("study-epochs-nan", ["study", "--quick", "--epochs", "nan", "--out", "{d}/st"]),
    ("study-seeds-1e23", ["study", "--quick", "--seeds", "1e23", "--out", "{d}/st"]),
    ("study-seeds-repeated", ["study", "--quick", "--seeds", "0,1,0", "--out", "{d}/st"]),
    ("study-budgets-down", ["study", "--quick", "--epoch-multiples", "2,1", "--out", "{d}/st"]),
    ("study-budgets-word", ["study", "--quick", "--epoch-multiples", "1,x", "--out", "{d}/st"]),
    ("search-missing", ["search-coefficients", "{d}/missing.json", "--out", "{d}/se"]),
    ("search-non-utf8", ["search-coefficients", "{d}/nonutf8.json", "--out", "{d}/se"]),
    ("compare-missing", ["compare-baselines", "{d}/missing.json", "--out", "{d}/cb"]),
    ("compare-non-utf8", ["compare-baselines", "{d}/nonutf8.json", "--out", "{d}/cb"]),
    ("compare-nothing", ["compare-baselines", "--out", "{d}/cb"]),
    ("compare-resume-empty", ["compare-baselines", "--resume", "--out", "{d}/cb"]),
    ("archsearch-missing", ["search-architecture", "{d}/missing.json", "--out", "{d}/as"]),
    ("archsearch-non-utf8", ["search-architecture", "{d}/nonutf8.json", "--out", "{d}/as"]),
    ("archsearch-target-tiny", ["search-architecture", "--quick", "--target-flops", "1",
                                "--out", "{d}/as"]),  # fmt: skip
    ("archsearch-target-word", ["search-architecture", "--quick", "--target-flops", "lots",
                                "--out", "{d}/as"]),  # fmt: skip
    # train / eval
    ("train-epochs-nan", ["train", "efficientnet_b0", "--epochs", "nan", "--out", "{d}/r"]),
    ("train-epochs-inf", ["train", "efficientnet_b0", "--epochs", "inf", "--out", "{d}/r"]),
    ("train-lr-nan", ["train", "efficientnet_b0", "--lr", "nan", "--out", "{d}/r"]),
    ("train-max-time-0", ["train", "efficientnet_b0", "--max-time", "0", "--out", "{d}/r"]),
    ("train-max-time-neg", ["train", "efficientnet_b0", "--max-time", "-5", "--out", "{d}/r"]),
    ("train-batch-1", ["train", "efficientnet_b0", "--batch-size", "1", "--out", "{d}/r"]),
    ("train-seed-1e23", ["train", "efficientnet_b0", "--seed", "1e23", "--out", "{d}/r"]),
    ("train-set-seed-1e23", ["train", "efficientnet_b0", "--set", "seed=1e23", "--out", "{d}/r"]),
    ("train-weight-decay", ["train", "efficientnet_b0", "--set", "weight_decay=-1",
                            "--out", "{d}/r"]),  # fmt: skip
    ("train-resize-stages-0", ["train", "efficientnet_b0", "--set", "resize_stages=0",
                               "--out", "{d}/r"]),  # fmt: skip
    ("train-resize-start-0", ["train", "efficientnet_b0", "--set", "resize_start=0",
                              "--out", "{d}/r"]),  # fmt: skip
    ("train-recipe-nan", ["train", "efficientnet_b0", "--recipe", "{d}/recipe_nan.json",
                          "--out", "{d}/r"]),  # fmt: skip
    ("train-recipe-non-utf8", ["train", "efficientnet_b0", "--recipe", "{d}/nonutf8.json",
                               "--out", "{d}/r"]),  # fmt: skip
    ("train-phi-1e9", ["train", "efficientnet_b0", "--phi", "1e9", "--out", "{d}/r"]),
    ("train-minival-neg", ["train", "efficientnet_b0", "--minival", "-1", "--out", "{d}/r"]),
    ("train-decode-1e5", ["train", "efficientnet_b0", "--decode-size", "100000",
                          "--out", "{d}/r"]),  # fmt: skip
    ("train-one-class", ["train", "efficientnet_b0", "--data", "{d}/oneclass", "--out", "{d}/r"]),
    ("train-no-data", ["train", "efficientnet_b0", "--data", "{d}/missing", "--out", "{d}/r"]),
    ("eval-missing", ["eval", "{d}/missing"]),
    ("eval-empty-dir", ["eval", "{d}/folder"]),
    ("eval-non-utf8-config", ["eval", "{d}/run"]),
    ("eval-3-channels-on-1", ["eval", "{d}/rgb10", "--data", "fashion-mnist"]),
    # validate and published weights
    ("validate-missing-folder", ["validate", "efficientnet_b0", "{d}/missing"]),
    ("validate-empty-folder", ["validate", "efficientnet_b0", "{d}/folder"]),
    ("validate-unknown-tag", ["validate", "efficientnet_b0.nope", "{d}/folder"]),
    ("validate-hub-offline", ["validate", "hf-hub:timm/nothing", "{d}/folder"]),
    ("predict-phi-pretrained", ["predict", "efficientnet_b0.ra_in1k", "{d}/ok.png",
                                "--phi", "1.5"]),  # fmt: skip
    # convert
    ("convert-text-file", ["convert", "{d}/text.pth", "--model", "efficientnet_b0",
                           "--out", "{d}/c"]),  # fmt: skip
    ("convert-missing", ["convert", "{d}/missing.pth", "--model", "efficientnet_b0",
                         "--out", "{d}/c"]),  # fmt: skip
    ("convert-empty-dir", ["convert", "{d}/folder", "--model", "efficientnet_b0",
                           "--out", "{d}/c"]),  # fmt: skip
    ("convert-classes-0", ["convert", "{d}/text.pth", "--model", "efficientnet_b0",
                           "--out", "{d}/c", "--num-classes", "0"]),  # fmt: skip
    ("convert-names-non-utf8", ["convert", "{d}/text.pth", "--model", "efficientnet_b0",
                                "--out", "{d}/c", "--class-names", "{d}/classes_bad.txt"]),
]  # fmt: skip
if not ROOT:
    CASES += [
        ("describe-unreadable", ["describe", "{d}/unreadable.json"]),
        ("predict-unreadable", ["predict", "{d}/unreadable.json", "{d}/ok.png"]),
    ]


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder``: a file's content hash and mode, or 'dir'."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames:
            out[os.path.join(dirpath, name)] = "dir"
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            try:
                digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            except OSError:
                digest = "unreadable"
            out[path] = f"{digest} {st.st_mode:o}"
    return out


def run_cli(capsys: pytest.CaptureFixture, argv: list[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse usage errors
        code = e.code if isinstance(e.code, int) else 2
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(ws, capsys, monkeypatch, argv):
    monkeypatch.chdir(ws)  # a default output folder (runs/...) would land here, and be seen
    monkeypatch.delenv("EFFNET_DEBUG", raising=False)
    before = snapshot(ws)
    code, _, err = run_cli(capsys, [a.format(d=ws) for a in argv])
    lines = err.splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("effnet")
    assert snapshot(ws) == before


def test_every_subcommand_is_in_the_table():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    tried = {argv[0] for _, argv in CASES if argv}
    assert set(sub.choices) - tried == set()


def test_os_errors_while_writing_name_the_file(ws, capsys, monkeypatch):
    """A read-only folder and a full disk (simulated: root ignores permissions)."""
    import effnet.io

    for code, text in ((errno.EACCES, "Permission denied"), (errno.ENOSPC, "disk full")):

        def refuse(*a: object, _code: int = code, **k: object) -> None:
            raise OSError(_code, os.strerror(_code))

        monkeypatch.setattr(effnet.io.tempfile, "mkstemp", refuse)
        target = ws / "folder" / "b0.json"
        rc, _, err = run_cli(capsys, ["describe", "efficientnet_b0", "--save", str(target)])
        assert rc == 2 and err.count("\n") == 1 and text in err and str(target) in err
        assert not target.exists()


def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(capsys, monkeypatch):
    import effnet.cli.arch as arch_cli

    def boom(args: object) -> int:
        raise KeyError(101)

    monkeypatch.setattr(arch_cli, "cmd_models", boom)
    code, _, err = run_cli(capsys, ["models"])
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("effnet: internal error in 'effnet models' (KeyError 101)")
    assert "bug in effnet" in err and "--debug" in err and "error: KeyError" not in err
    code, _, err = run_cli(capsys, ["--debug", "models"])
    assert code == 2 and "Traceback" in err and "KeyError: 101" in err
    monkeypatch.setenv("EFFNET_DEBUG", "1")
    assert "Traceback" in run_cli(capsys, ["models"])[2]


@pytest.mark.parametrize("exc", [KeyError("config"), IndexError("list index out of range"),
                                 AttributeError("'NoneType' object has no attribute 'x'"),
                                 TypeError("unsupported operand")])  # fmt: skip
def test_no_bare_python_exception_name_reaches_the_user(capsys, monkeypatch, exc):
    """A KeyError, IndexError, AttributeError or TypeError from our code is a bug: the one
    line says so and names the command; an OS error or our own error stays as it was."""
    import effnet.cli.arch as arch_cli

    def boom(args: object) -> int:
        raise exc

    monkeypatch.delenv("EFFNET_DEBUG", raising=False)
    monkeypatch.setattr(arch_cli, "cmd_describe", boom)
    code, _, err = run_cli(capsys, ["describe", "efficientnet_b0"])
    name = type(exc).__name__
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"effnet: internal error in 'effnet describe' ({name} ")
    assert f"error: {name}" not in err and "report it" in err


def test_user_errors_are_not_called_internal(capsys, monkeypatch):
    import effnet.cli.arch as arch_cli

    for exc, text in ((EffnetError("model 'b9' is unknown"), "effnet: error: model 'b9'"),
                      (FileNotFoundError(2, "No such file or directory", "x.json"),
                       "effnet: error: x.json: No such file")):  # fmt: skip

        def boom(args: object, _e: Exception = exc) -> int:
            raise _e

        monkeypatch.setattr(arch_cli, "cmd_describe", boom)
        err = run_cli(capsys, ["describe", "efficientnet_b0"])[2]
        assert err.startswith(text) and "internal" not in err


@pytest.mark.parametrize(
    "argv",
    [["describe", "efficientnet_b0", "--phi", "1e9"], ["convert", "{d}/text.pth",
                                                        "--model", "efficientnet_b0",
                                                        "--out", "{d}/c"]],
    ids=["phi-1e9", "convert-text"],
)  # fmt: skip
@pytest.mark.slow
def test_the_real_command_exits_2_with_one_line(ws, argv):
    env = {k: v for k, v in os.environ.items() if k != "EFFNET_DEBUG"}
    p = subprocess.run(
        [sys.executable, "-m", "effnet", *(a.format(d=ws) for a in argv)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert p.returncode == 2 and len(p.stderr.splitlines()) == 1, p.stderr
    assert "Traceback" not in p.stderr and p.stdout == ""


@pytest.mark.slow
def test_describe_depth_1e6_is_refused_fast_and_small():
    """Under 2 s (after imports, which a loaded CPU can stretch) and 500 MB (the peak
    resident size of the whole process, torch included). The peak is the child's own VmHWM:
    its rusage would start at the parent's peak, which Linux carries across exec."""
    code = (
        "import time, effnet.cli as c\n"
        "c.build_parser()\n"  # imports torch and every command: not what is measured
        "t = time.perf_counter()\n"
        "rc = c.main(['describe', 'efficientnet_b0', '--depth', '1e6'])\n"
        "dt = time.perf_counter() - t\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "print(rc, dt, hwm)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    rc, seconds, peak_kib = p.stdout.split()
    assert p.returncode == 0 and rc == "2", p.stderr
    assert "blocks need about" in p.stderr and len(p.stderr.splitlines()) == 1
    assert float(seconds) < 2.0
    assert int(peak_kib) * 1024 < 500 * 2**20


def test_a_full_disk_under_torch_save_names_the_file(tmp_path):
    """torch.save reports ENOSPC as 'unexpected pos N vs M' (simulated here)."""
    from effnet.errors import EffnetError
    from effnet.io import atomic_write_with

    def full(tmp: str) -> None:
        Path(tmp).write_bytes(b"partial")
        raise RuntimeError(
            "[enforce fail at inline_container.cc:664] . unexpected pos 2019392 vs 2019280"
        )

    with pytest.raises(EffnetError, match=f"cannot write {tmp_path / 'last.pt'}: the disk is full"):
        atomic_write_with(tmp_path / "last.pt", full)
    assert list(tmp_path.iterdir()) == []
