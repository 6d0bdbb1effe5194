"""PSNR / SSIM under the two evaluation protocols, and fidelity between two outputs (torch-free).

``standard`` protocol (the SR papers'): :func:`psnr_y`, :func:`ssim_y` score the BT.601 luma Y
(MATLAB ``rgb2ycbcr``) computed in float64 from the uint8 RGB images and *not* re-rounded to integers
(as BasicSR ``test_y_channel`` and EDSR do), after cropping ``crop`` pixels from every side.

``vendor`` protocol: :func:`psnr_rgb`, :func:`ssim_rgb` over all three channels, no crop.

SSIM follows the MATLAB reference of Wang et al. (``ssim_index.m``): 11x11 Gaussian window with
sigma 1.5 (normalized to sum 1), K1 = 0.01, K2 = 0.03, L = 255, 'valid' filtering (no padding, the
SSIM map is (H-10)x(W-10)), population (biased) variances, float64. It equals skimage's
``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=255)``, because skimage averages its padded SSIM map only over that same valid region.

PSNR of identical images is ``float('inf')``; :func:`json_float` turns it into the JSON-safe string
``"inf"`` (strict JSON has no infinity) and :func:`parse_json_float` reads it back.
"""

from __future__ import annotations

import math

import numpy as np

from vacc_deploy.errors import ShapeError
from vacc_deploy.imaging.color import rgb_to_y

WINDOW_SIZE = 11
WINDOW_SIGMA = 1.5
K1, K2 = 0.01, 0.03
PEAK = 255.0


def _check_pair(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.shape != b.shape:
        raise ShapeError(f"{what}: images differ in shape, {a.shape} vs {b.shape}")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ShapeError(f"{what}: expects uint8 images, got {a.dtype} and {b.dtype}")


def _crop(img: np.ndarray, crop: int) -> np.ndarray:
    if crop < 0:
        raise ShapeError(f"border crop must be >= 0, got {crop}")
    if crop == 0:
        return img
    if img.shape[0] <= 2 * crop or img.shape[1] <= 2 * crop:
        raise ShapeError(f"image of {img.shape[0]}x{img.shape[1]} too small for border crop {crop}")
    return img[crop:-crop, crop:-crop]


def psnr_from_mse(mse: float, peak: float = PEAK) -> float:
    """PSNR in dB for a mean squared error on a ``peak`` scale; inf when mse == 0."""
    return float("inf") if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    diff = a.astype(np.float64) - b.astype(np.float64)
    return psnr_from_mse(float(np.mean(diff * diff)))


def gaussian_window_1d(size: int = WINDOW_SIZE, sigma: float = WINDOW_SIGMA) -> np.ndarray:
    """1-D Gaussian of ``size`` taps summing to 1 (its outer product is MATLAB's fspecial window)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable correlation of float64 HxW ``img`` with ``outer(g, g)``, 'valid' region only."""
    n = g.size
    h, w = img.shape[0] - n + 1, img.shape[1] - n + 1
    rows = sum(g[k] * img[k:k + h, :] for k in range(n))
    return sum(g[k] * rows[:, k:k + w] for k in range(n))


def ssim_map(a: np.ndarray, b: np.ndarray, peak: float = PEAK) -> np.ndarray:
    """SSIM map of two single-channel float images (HxW, values on a 0..peak scale).

    Returns float64 (H-10)x(W-10). Raises ShapeError when H or W < 11.
    """
    if a.shape[0] < WINDOW_SIZE or a.shape[1] < WINDOW_SIZE:
        raise ShapeError(f"SSIM needs images of at least {WINDOW_SIZE}x{WINDOW_SIZE}, got {a.shape}")
    x, y = a.astype(np.float64), b.astype(np.float64)
    g = gaussian_window_1d()
    c1, c2 = (K1 * peak) ** 2, (K2 * peak) ** 2
    mx, my = _filter_valid(x, g), _filter_valid(y, g)
    sxx = _filter_valid(x * x, g) - mx * mx
    syy = _filter_valid(y * y, g) - my * my
    sxy = _filter_valid(x * y, g) - mx * my
    num = (2 * mx * my + c1) * (2 * sxy + c2)
    den = (mx * mx + my * my + c1) * (sxx + syy + c2)
    return num / den


def _y(img: np.ndarray, crop: int, round_y: bool) -> np.ndarray:
    y = rgb_to_y(img)
    return _crop(np.round(y) if round_y else y, crop)


def psnr_y(sr: np.ndarray, hr: np.ndarray, crop: int, round_y: bool = False) -> float:
    """Standard protocol PSNR (dB) on the Y of uint8 HxWx3 RGB images, ``crop`` px cut per side.

    ``round_y``: round Y to integers first (MATLAB ``rgb2ycbcr`` on uint8, numpy half-to-even as
    the official LESRCNN code does); otherwise Y stays float (BasicSR/EDSR convention).
    """
    _check_pair(sr, hr, "psnr_y")
    return _psnr(_y(sr, crop, round_y), _y(hr, crop, round_y))


def ssim_y(sr: np.ndarray, hr: np.ndarray, crop: int, round_y: bool = False) -> float:
    """Standard protocol SSIM on the Y of uint8 HxWx3 RGB images (see :func:`psnr_y`)."""
    _check_pair(sr, hr, "ssim_y")
    return float(np.mean(ssim_map(_y(sr, crop, round_y), _y(hr, crop, round_y))))


def psnr_rgb(a: np.ndarray, b: np.ndarray) -> float:
    """Vendor protocol PSNR (dB) over all channels of two uint8 HxWxC images, no crop."""
    _check_pair(a, b, "psnr_rgb")
    return _psnr(a, b)


def ssim_rgb(a: np.ndarray, b: np.ndarray) -> float:
    """Vendor protocol SSIM: per-channel SSIM (11x11 Gaussian, sigma 1.5) of uint8 HxWxC, averaged."""
    _check_pair(a, b, "ssim_rgb")
    if a.ndim == 2:
        return float(np.mean(ssim_map(a, b)))
    return float(np.mean([np.mean(ssim_map(a[..., c], b[..., c])) for c in range(a.shape[2])]))


def fidelity(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """Agreement of two uint8 outputs of the same shape (e.g. quantized vs fp32 model).

    Returns:
        (PSNR in dB over all channels, peak 255 -- ``float('inf')`` when identical,
        largest absolute difference in levels, an int in 0..255).
    """
    _check_pair(a, b, "fidelity")
    max_abs = int(np.max(np.abs(a.astype(np.int16) - b.astype(np.int16)))) if a.size else 0
    return _psnr(a, b), max_abs


def json_float(value: float) -> float | str | None:
    """A metric made JSON-safe: finite floats unchanged, +/-inf as ``"inf"``/``"-inf"``, NaN as None."""
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return float(value)


def parse_json_float(value: float | str | None) -> float:
    """Inverse of :func:`json_float` (None reads back as NaN)."""
    if value is None:
        return float("nan")
    return float(value)
