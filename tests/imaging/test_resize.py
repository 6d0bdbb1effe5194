"""MATLAB-compatible bicubic imresize: hand-computed values, upscaling, and the shipped SR pairs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vacc_deploy.errors import ShapeError
from vacc_deploy.imaging.resize import bicubic_downsample_uint8, contributions, cubic, imresize


def test_cubic_kernel_values() -> None:
    x = np.array([0.0, 0.25, 0.75, 1.0, 1.25, 1.75, 2.0, 2.5])
    want = [1.0, 0.8671875, 0.2265625, 0.0, -0.0703125, -0.0234375, 0.0, 0.0]
    np.testing.assert_allclose(cubic(x), want, atol=1e-15)
    np.testing.assert_allclose(cubic(-x), want, atol=1e-15)


def test_weights_sum_to_one_and_indices_valid() -> None:
    for n_in, n_out in [(10, 5), (9, 3), (7, 21), (5, 4)]:
        w, idx = contributions(n_in, n_out, n_out / n_in)
        np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
        assert idx.min() >= 0 and idx.max() < n_in


def test_upscale_ramp_hand_values() -> None:
    ramp = np.arange(1, 9, dtype=np.float64)[None, :].repeat(3, axis=0)  # 3x8, values 1..8
    out = imresize(ramp, scale=2)
    assert out.shape == (6, 16)
    # Keys' cubic reproduces linear functions: interior output x (1-based) = u = x/2 + 0.25
    x = np.arange(1, 17)
    np.testing.assert_allclose(out[1, 5:11], (x / 2 + 0.25)[5:11], atol=1e-12)
    # first column by hand: taps [2, 1, 1, 2] (symmetric mirror) with weights
    # cubic(1.75), cubic(0.75), cubic(0.25), cubic(1.25) -> 0.90625
    assert out[0, 0] == pytest.approx(0.90625, abs=1e-12)
    rep = imresize(ramp, scale=2, boundary="replicate")
    assert rep[0, 0] == pytest.approx(0.9296875, abs=1e-12)


def test_downscale_ramp_interior_and_constant() -> None:
    ramp = np.arange(1, 17, dtype=np.float64)[:, None].repeat(2, axis=1)
    out = imresize(ramp, scale=0.5)
    assert out.shape == (8, 1)
    # antialiased kernel spans 8 input pixels; away from borders output = u = 2x - 0.5
    np.testing.assert_allclose(out[2:6, 0], [5.5, 7.5, 9.5, 11.5], atol=1e-12)
    const = np.full((13, 11, 3), 0.3)
    for s in (0.5, 1 / 3, 0.25, 2, 3):
        np.testing.assert_allclose(imresize(const, scale=s), 0.3, atol=1e-12)


def test_output_shape_and_errors() -> None:
    img = np.random.default_rng(0).random((10, 12, 3))
    assert imresize(img, output_shape=(5, 7)).shape == (5, 7, 3)
    assert imresize(img, scale=0.3).shape == (3, 4, 3)  # ceil(10*0.3), ceil(12*0.3)
    with pytest.raises(ShapeError):
        imresize(img)
    with pytest.raises(ShapeError):
        imresize(img, scale=2, output_shape=(3, 3))
    with pytest.raises(ShapeError):
        imresize(np.zeros((0, 3)), scale=2)


def test_downsample_crops_to_multiple() -> None:
    hr = np.random.default_rng(1).integers(0, 256, (31, 26, 3), dtype=np.uint8)
    lr = bicubic_downsample_uint8(hr, 3)
    assert lr.shape == (10, 8, 3) and lr.dtype == np.uint8
    np.testing.assert_array_equal(lr, bicubic_downsample_uint8(hr[:30, :24], 3))
    with pytest.raises(ShapeError):
        bicubic_downsample_uint8(hr.astype(np.float32), 2)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_downsample_reproduces_shipped_lr(images_dir, scale: int) -> None:
    """Measured: bit-identical on every Set5 + Set14 pair (19 images) at scales 2, 3 and 4."""
    pairs = []
    for ds in ("Set5", "Set14"):
        pairs += sorted((images_dir / ds / f"image_SRF_{scale}").glob("*_HR.png"))[:4]
    if not pairs:
        pytest.skip("no Set5/Set14 pairs")
    for hr_path in pairs:
        hr = cv2.imread(str(hr_path), cv2.IMREAD_UNCHANGED)
        lr = cv2.imread(str(hr_path).replace("_HR.png", "_LR.png"), cv2.IMREAD_UNCHANGED)
        mine = bicubic_downsample_uint8(hr, scale)
        assert mine.shape == lr.shape, hr_path.name
        diff = np.abs(mine.astype(np.int16) - lr)
        assert diff.max() == 0, f"{hr_path.name}: {np.count_nonzero(diff)} pixels differ"
        # MATLAB's symmetric mirror differs only on the outermost LR rows/columns
        sym = bicubic_downsample_uint8(hr, scale, boundary="symmetric").astype(np.int16)
        np.testing.assert_array_equal(sym[3:-3, 3:-3], lr[3:-3, 3:-3])
