"""PSNR / SSIM: known values, identities, and agreement with skimage."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from vacc_deploy.errors import ShapeError
from vacc_deploy.imaging import metrics as M
from vacc_deploy.imaging.color import rgb_to_y


def _rand(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_psnr_known_values() -> None:
    a = np.zeros((8, 8, 3), np.uint8)
    b = a.copy()
    b[..., 0] = 3  # mse over all channels = 9 / 3 = 3
    assert M.psnr_rgb(a, b) == pytest.approx(10 * math.log10(255**2 / 3))
    b2 = np.full((8, 8, 3), 10, np.uint8)  # mse = 100
    assert M.psnr_rgb(a, b2) == pytest.approx(10 * math.log10(255**2 / 100))
    # Y difference for a uniform grey offset of 10 levels is 219/255*10
    dy = 219 / 255 * 10
    assert M.psnr_y(a, b2, crop=2) == pytest.approx(10 * math.log10(255**2 / dy**2))
    assert M.psnr_rgb(a, a) == math.inf


def test_psnr_y_crop_ignores_border() -> None:
    a = _rand((20, 20, 3), 1)
    b = a.copy()
    b[:3] = 0
    b[:, -3:] = 255
    assert M.psnr_y(a, b, crop=3) == math.inf
    assert M.psnr_y(a, b, crop=2) < 40


def test_ssim_identical_is_one() -> None:
    a = _rand((32, 40, 3), 2)
    assert M.ssim_y(a, a, crop=4) == pytest.approx(1.0, abs=1e-12)
    assert M.ssim_rgb(a, a) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ssim_matches_skimage(seed: int) -> None:
    a = _rand((48, 37, 3), seed)
    noise = np.random.default_rng(seed + 10).normal(0, 20, a.shape)
    b = np.clip(a + noise, 0, 255).astype(np.uint8)
    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    ya, yb = rgb_to_y(a)[2:-2, 2:-2], rgb_to_y(b)[2:-2, 2:-2]
    # skimage pads (reflect) but averages its SSIM map only over the valid region: same number
    assert M.ssim_y(a, b, crop=2) == pytest.approx(structural_similarity(ya, yb, **kw), abs=1e-6)
    want = np.mean([structural_similarity(a[..., c].astype(float), b[..., c].astype(float), **kw)
                    for c in range(3)])
    assert M.ssim_rgb(a, b) == pytest.approx(want, abs=1e-6)


def test_gaussian_window() -> None:
    g = M.gaussian_window_1d()
    assert g.shape == (11,) and g.sum() == pytest.approx(1.0)
    assert np.argmax(g) == 5


def test_fidelity_and_json() -> None:
    a = _rand((10, 10, 3), 3)
    assert M.fidelity(a, a) == (math.inf, 0)
    b = a.copy()
    b[0, 0, 0] = a[0, 0, 0] ^ 0x80  # differs by 128
    psnr, mx = M.fidelity(a, b)
    assert mx == 128 and psnr == pytest.approx(10 * math.log10(255**2 * 300 / 128**2))
    text = json.dumps({"fidelity_psnr": M.json_float(math.inf), "x": M.json_float(30.5)},
                      allow_nan=False)
    back = json.loads(text)
    assert M.parse_json_float(back["fidelity_psnr"]) == math.inf and back["x"] == 30.5
    assert M.json_float(float("nan")) is None


def test_shape_errors() -> None:
    a = _rand((20, 20, 3), 4)
    with pytest.raises(ShapeError):
        M.psnr_y(a, a[:10], crop=2)
    with pytest.raises(ShapeError):
        M.psnr_rgb(a, a.astype(np.float32))
    with pytest.raises(ShapeError):
        M.ssim_y(a, a, crop=5)  # 10x10 left: smaller than the window
    with pytest.raises(ShapeError):
        M.psnr_y(a, a, crop=10)


def test_set5_bicubic_baseline_matches_published(images_dir) -> None:
    """Bicubic x4 on Set5 (float Y, crop 4): measured 28.432 dB / 0.8113; papers report
    28.42 / 0.8104 (their MATLAB scripts round Y to uint8, which gives 28.419 / 0.8102)."""
    from vacc_deploy.imaging.datasets import find_pairs
    from vacc_deploy.imaging.io import read_image, to_uint
    from vacc_deploy.imaging.resize import imresize, round_half_away

    root = images_dir / "Set5"
    if not root.is_dir():
        pytest.skip("Set5 not in shared data")
    psnrs, ssims = [], []
    for pair in find_pairs(root, 4):
        hr = to_uint(read_image(pair.hr_path).rgb)
        lr = to_uint(read_image(pair.lr_path).rgb)
        up = round_half_away(np.clip(imresize(lr, scale=4), 0, 255)).astype(np.uint8)
        psnrs.append(M.psnr_y(up, hr, crop=4))
        ssims.append(M.ssim_y(up, hr, crop=4))
    assert np.mean(psnrs) == pytest.approx(28.42, abs=0.05)
    assert np.mean(ssims) == pytest.approx(0.8104, abs=0.002)
