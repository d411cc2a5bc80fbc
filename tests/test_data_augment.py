"""BatchTransform and RandAugment: shapes, normalisation, reproducibility, PIL as oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps

from effnet.data import FASHION_MNIST_MEAN, FASHION_MNIST_STD, BatchTransform
from effnet.data.augment import pad_and_crop
from effnet.data.randaugment import OPS, RandAugment
from effnet.errors import EffnetError

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def _batch(n=16, c=1, size=28, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, size, size), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("resolution", [32, 64])
@pytest.mark.parametrize("train", [True, False])
def test_output_shape_dtype_and_finite(resolution, train):
    t = BatchTransform(resolution, FASHION_MNIST_MEAN, FASHION_MNIST_STD, train=train)
    out = t(_batch())
    assert out.shape == (16, 1, resolution, resolution) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("train", [True, False])
def test_a_smaller_side_on_request_for_progressive_resizing(train):
    t = BatchTransform(28, FASHION_MNIST_MEAN, FASHION_MNIST_STD, train=train, hflip=False)
    x = _batch()
    assert t(x, 16).shape == (16, 1, 16, 16) and t(x, None).shape == (16, 1, 28, 28)
    if not train:  # antialiased bilinear downscaling of the same normalised batch
        expected = torch.nn.functional.interpolate(
            t(x), size=(16, 16), antialias=True, mode="bilinear"
        )
        assert torch.allclose(t(x, 16), expected, atol=1e-5)


def test_eval_normalisation_is_exact_on_constant_images():
    t = BatchTransform(32, FASHION_MNIST_MEAN, FASHION_MNIST_STD, train=False)
    out = t(torch.full((2, 1, 28, 28), 200, dtype=torch.uint8))
    expected = (200 / 255 - FASHION_MNIST_MEAN[0]) / FASHION_MNIST_STD[0]
    assert torch.allclose(out, torch.full_like(out, expected), atol=1e-5)


def test_grey_images_with_rgb_statistics_use_their_average():
    t = BatchTransform(28, *IMAGENET, train=False)
    out = t(torch.full((1, 1, 28, 28), 255, dtype=torch.uint8))
    assert out[0, 0, 0, 0].item() == pytest.approx((1 - 0.449) / 0.226, abs=1e-4)
    rgb = BatchTransform(28, *IMAGENET, train=False)(torch.zeros(1, 3, 28, 28, dtype=torch.uint8))
    assert rgb[0, :, 0, 0].tolist() == pytest.approx(
        [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225]
    )


def test_train_augmentation_replays_under_manual_seed_and_differs_otherwise():
    t = BatchTransform(32, FASHION_MNIST_MEAN, FASHION_MNIST_STD, train=True, random_erasing=0.5)
    x = _batch(32)
    torch.manual_seed(7)
    a = t(x)
    torch.manual_seed(7)
    b = t(x)
    c = t(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_eval_mode_is_deterministic_and_train_mode_is_not_identity():
    x = _batch(8)
    t = BatchTransform(32, FASHION_MNIST_MEAN, FASHION_MNIST_STD, train=False)
    assert torch.equal(t(x), t(x))
    t.train()
    assert not torch.equal(t(x), t.eval()(x))


def test_flip_only_gives_the_image_or_its_mirror():
    t = BatchTransform(28, (0.0,), (1.0,), train=True, randaugment=None, crop_padding=0.0)
    x = _batch(64)
    torch.manual_seed(0)
    out = t(x)
    ref = x.float() / 255
    same = (out - ref).abs().amax((1, 2, 3)) < 1e-6
    mirrored = (out - ref.flip(-1)).abs().amax((1, 2, 3)) < 1e-6
    assert (same | mirrored).all() and same.any() and mirrored.any()


def test_pad_and_crop_takes_shifted_windows_of_the_zero_padded_image():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float).view(2, 1, 6, 6) + 1
    torch.manual_seed(3)
    out = pad_and_crop(x, 2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        windows = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(padded[i, :, dy : dy + 6, dx : dx + 6], out[i])
        ]
        assert len(windows) == 1


def test_large_sources_are_random_resized_cropped():
    t = BatchTransform(32, *IMAGENET, train=True)
    x = _batch(4, c=3, size=80)
    torch.manual_seed(1)
    a = t(x)
    torch.manual_seed(1)
    assert a.shape == (4, 3, 32, 32) and torch.equal(a, t(x))
    assert BatchTransform(32, *IMAGENET, train=False, crop_pct=0.875)(_batch(4, 3, 80)).shape == (
        4,
        3,
        32,
        32,
    )


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(EffnetError, match="mismatch"):
        BatchTransform(32, (0.5, 0.5), (0.5,), train=True)
    with pytest.raises(EffnetError, match="3-channel mean/std for 2-channel"):
        BatchTransform(32, *IMAGENET, train=False)(_batch(1, c=2))
    with pytest.raises(EffnetError, match="magnitude"):
        RandAugment(2, 11)
    with pytest.raises(EffnetError, match="unknown randaugment"):
        RandAugment(2, 9, ops=("cutout",))


def test_randaugment_draws_operations_per_image():
    """kornia's RandAugment would treat all 64 identical images alike; ours must not."""
    x = (_batch(1, c=3, size=16).float() / 255).expand(64, -1, -1, -1).contiguous()
    torch.manual_seed(0)
    out = RandAugment(1, 9)(x)
    distinct = {tuple(img.flatten()[:40].tolist()) for img in out}
    assert len(distinct) >= 8


# -- the operations against PIL (what the TF EfficientNet and timm ops reproduce) -----------


def _pil_images(seed=0, n=6):
    rng = np.random.default_rng(seed)
    imgs = []
    for i in range(n):
        a = rng.integers(20, 200, (12, 12, 3)).astype(np.uint8)
        a[i % 3 :: 4] //= 3  # some structure for equalize/sharpness
        imgs.append(Image.fromarray(a))
    return imgs


def _to_tensor(imgs):
    return (
        torch.stack([torch.from_numpy(np.asarray(i).copy()).permute(2, 0, 1) for i in imgs]) / 255
    )


def _to_uint8(t):
    return (t * 255).round().clamp(0, 255).to(torch.uint8)


@pytest.mark.parametrize(
    "name, pil_op, tol",
    [
        ("invert", ImageOps.invert, 0),
        ("auto_contrast", ImageOps.autocontrast, 1),
        ("equalize", ImageOps.equalize, 0),
        ("posterize", lambda im: ImageOps.posterize(im, 8 - int(0.4 * 9)), 0),
        ("solarize", lambda im: ImageOps.solarize(im, round(0.9 * 255)), 1),
        ("brightness", lambda im: ImageEnhance.Brightness(im).enhance(0.1 + 1.8 * 0.9), 1),
        ("color", lambda im: ImageEnhance.Color(im).enhance(0.1 + 1.8 * 0.9), 2),
        ("contrast", lambda im: ImageEnhance.Contrast(im).enhance(0.1 + 1.8 * 0.9), 3),
        ("sharpness", lambda im: ImageEnhance.Sharpness(im).enhance(0.1 + 1.8 * 0.9), 2),
    ],
)
def test_pixel_operations_match_pil(name, pil_op, tol):
    imgs = _pil_images()
    ours = _to_uint8(OPS[name](_to_tensor(imgs), 9.0)).int()
    theirs = (_to_tensor([pil_op(im) for im in imgs]) * 255).round().int()
    assert (ours - theirs).abs().max().item() <= tol


def test_geometric_operations_move_pixels_by_the_magnitude():
    x = torch.zeros(2, 1, 21, 21)
    x[:, :, 10, 10] = 1.0
    torch.manual_seed(0)
    moved = OPS["translate_x"](x, 10.0)  # 0.45 of 21 px = 9.45 px left or right
    cols = moved[:, 0].sum(0).nonzero()[:, 1].unique().tolist()
    assert all(abs(c - 10) in (9, 10) for c in cols)
    rotated = OPS["rotate"](torch.ones(1, 1, 21, 21), 10.0)  # 30 degrees: corners go dark
    assert rotated[0, 0, 0, 0] < 0.1 and rotated[0, 0, 10, 10] == pytest.approx(1.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_transform_runs_on_the_gpu_and_eval_matches_the_cpu():
    x = _batch(32)
    cpu = BatchTransform(64, FASHION_MNIST_MEAN, FASHION_MNIST_STD, train=False)
    gpu = BatchTransform(64, FASHION_MNIST_MEAN, FASHION_MNIST_STD, train=False).cuda()
    assert torch.allclose(gpu(x.cuda()).cpu(), cpu(x), atol=1e-5)
    gpu.train()
    torch.manual_seed(0)
    out = gpu(x.cuda())
    assert out.shape == (32, 1, 64, 64) and out.is_cuda and torch.isfinite(out).all()
