"""Colour conversion as MATLAB ``rgb2ycbcr`` (ITU-R BT.601, studio swing), torch-free."""

from __future__ import annotations

import numpy as np

from vacc_deploy.errors import ShapeError

#: MATLAB rgb2ycbcr luma row for R, G, B in [0, 1]; Y on the 0..255 scale.
Y_COEFFS = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """Luma Y of an RGB image as MATLAB ``rgb2ycbcr`` computes it, without rounding.

    Args:
        rgb: HxWx3 array in RGB order. uint8 is read as ``value / 255``, uint16 as
            ``value / 65535``; floating input must already be in [0, 1].

    Returns:
        float64 HxW array ``16 + 65.481 R + 128.553 G + 24.966 B`` in [16, 235] (0..255 scale).
        Not rounded: SR papers' code (BasicSR ``test_y_channel``, EDSR) scores this float Y.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ShapeError(f"rgb_to_y expects an HxWx3 image, got shape {rgb.shape}")
    if rgb.dtype == np.uint8:
        x = rgb.astype(np.float64) / 255.0
    elif rgb.dtype == np.uint16:
        x = rgb.astype(np.float64) / 65535.0
    else:
        x = rgb.astype(np.float64)
    r, g, b = Y_COEFFS
    return Y_OFFSET + r * x[..., 0] + g * x[..., 1] + b * x[..., 2]


def bgr_to_rgb(img: np.ndarray) -> np.ndarray:
    """Swap the channel order of an HxWx3 (or HxWx4, alpha kept last) image; returns a copy."""
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ShapeError(f"expected an HxWx3 or HxWx4 image, got shape {img.shape}")
    out = img.copy()
    out[..., :3] = img[..., 2::-1]
    return out
