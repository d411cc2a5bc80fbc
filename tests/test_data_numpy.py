"""The NumPy-arrays source (a .npz file), added as one entry of effnet.data.sources: it
loads, splits, normalises by its own statistics, trains, and refuses bad files in one line."""

from __future__ import annotations

import numpy as np
import pytest

from effnet.data import DataSpec, load_splits
from effnet.data.sources import source_of
from effnet.errors import EffnetError
from effnet.study.data_info import data_shape, native_resolution


def write_npz(path, n=120, classes=3, rgb=False, **extra):
    rng = np.random.default_rng(0)
    shape = (n, 12, 10, 3) if rgb else (n, 12, 10)
    x = rng.integers(0, 256, shape, dtype=np.uint8)
    y = np.arange(n) % classes
    arrays = dict(x_train=x, y_train=y, x_test=x[: n // 4], y_test=y[: n // 4])
    arrays.update(extra)
    np.savez(path, **arrays)
    return x, y


def test_npz_loads_splits_and_describes_itself(tmp_path):
    path = tmp_path / "d.npz"
    x, _ = write_npz(path, class_names=np.array(["a", "b", "c"]))
    assert source_of(str(path)).name == "numpy"
    splits = load_splits(DataSpec(str(path), minival=30, workers=0))
    assert (len(splits.train), len(splits.minival), len(splits.test)) == (90, 30, 30)
    assert (splits.num_classes, splits.in_chans, splits.class_names) == (3, 1, ["a", "b", "c"])
    image, label = splits.test[0]
    assert image.shape == (1, 12, 10) and np.array_equal(image[0].numpy(), x[0])
    assert (
        data_shape({"source": str(path)}) == (3, 1)
        and native_resolution({"source": str(path)}) == 10
    )
    mean, std = source_of(str(path)).normalisation(str(path))
    assert mean[0] == pytest.approx(x.mean() / 255, abs=1e-4)
    rgb = tmp_path / "rgb.npz"
    write_npz(rgb, rgb=True)
    assert load_splits(DataSpec(str(rgb), minival=30, workers=0)).in_chans == 3


@pytest.mark.parametrize(
    "arrays, message",
    [
        (dict(x_train=np.zeros((4, 8, 8), np.float32)), r"x_train must be uint8"),
        (dict(y_train=np.zeros(3, np.int64)), r"y_train must hold one label per image"),
        (dict(y_train=np.zeros(120, np.int64)), r"cover classes 0..K-1"),
        (dict(class_names=np.array(["a"])), r"class_names lists 1 names for 3 classes"),
    ],
)
def test_bad_npz_files_are_one_line_errors(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    write_npz(path, **arrays)
    with pytest.raises(EffnetError, match=message):
        load_splits(DataSpec(str(path), workers=0))


def test_a_pickled_object_array_is_refused(tmp_path):
    path = tmp_path / "obj.npz"
    write_npz(path, class_names=np.array([object(), 1, 2], dtype=object))
    with pytest.raises(EffnetError, match=r"cannot read NumPy arrays"):
        load_splits(DataSpec(str(path), workers=0))


@pytest.mark.slow
def test_a_model_trains_on_npz_arrays_and_keeps_their_statistics(tmp_path):
    from effnet.train import RECIPES, train

    path = tmp_path / "d.npz"
    write_npz(path, n=64)
    recipe = RECIPES["cpu"].replace(epochs=1, batch_size=16, warmup_epochs=0, ema=False)
    run = train("efficientnet_b0", DataSpec(str(path), minival=16, workers=0), recipe,
                tmp_path / "run", model_overrides=dict(width=0.25, depth=0.25, resolution=32),
                progress=False)  # fmt: skip
    import json

    saved = json.loads((run.run_dir / "model" / "config.json").read_text())
    mean, _ = source_of(str(path)).normalisation(str(path))
    assert saved["preprocessing"]["mean"] == list(mean) and saved["in_chans"] == 1
