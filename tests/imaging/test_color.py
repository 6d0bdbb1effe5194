"""rgb_to_y matches MATLAB rgb2ycbcr's Y (BT.601)."""

from __future__ import annotations

import numpy as np
import pytest

from vacc_deploy.errors import ShapeError
from vacc_deploy.imaging.color import bgr_to_rgb, rgb_to_y


def test_known_values() -> None:
    px = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]],
                  dtype=np.uint8)
    y = rgb_to_y(px)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y[0], [16.0, 235.0, 16 + 65.481, 16 + 128.553, 16 + 24.966],
                               atol=1e-9)


def test_float_and_uint16_agree_with_uint8() -> None:
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    np.testing.assert_allclose(rgb_to_y(u8), rgb_to_y(u8 / 255.0), atol=1e-12)
    u16 = u8.astype(np.uint16) * 257
    np.testing.assert_allclose(rgb_to_y(u16), rgb_to_y(u8), atol=1e-9)
    mid = rgb_to_y(np.full((1, 1, 3), 128, np.uint8))[0, 0]
    assert mid == pytest.approx(16 + 219 * 128 / 255)


def test_errors_and_bgr() -> None:
    with pytest.raises(ShapeError):
        rgb_to_y(np.zeros((3, 3)))
    img = np.arange(12, dtype=np.uint8).reshape(1, 3, 4)
    out = bgr_to_rgb(img)
    np.testing.assert_array_equal(out[0, 0], [2, 1, 0, 3])
