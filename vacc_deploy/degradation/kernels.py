"""Blur kernels for the BSRGAN degradation model (numpy only).

Every kernel is a float32 ``(k, k)`` array, ``k`` odd, non-negative and summing to 1. Kernels are
applied with :func:`vacc_deploy.degradation.ops.apply_kernel` (true convolution, reflected border).

Ranges follow Zhang et al., "Designing a Practical Degradation Model for Deep Blind Image
Super-Resolution" (ICCV 2021, arXiv 2103.14006), Sec. 3.1: kernel size uniform in {7, 9, ..., 21};
isotropic width sigma uniform in [0.1, 2.4]; anisotropic rotation uniform in [0, pi] and each axis
uniform in [0.5, 6]. We read the paper's "axis length" as an eigenvalue (variance, px^2) of the
kernel covariance, as the reference code does (it draws the eigenvalues ``l1, l2`` of the
covariance), which keeps the anisotropic blur comparable in strength to the isotropic one.
"""

from __future__ import annotations

import cv2
import numpy as np

KERNEL_SIZES: tuple[int, ...] = tuple(range(7, 22, 2))  # {7, 9, ..., 21}
ISO_SIGMA_RANGE: tuple[float, float] = (0.1, 2.4)
ANISO_VAR_RANGE: tuple[float, float] = (0.5, 6.0)


def _grid(size: int, center: tuple[float, float] = (0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) offsets of each kernel tap from the kernel centre plus ``center`` (x, y), (size, size)."""
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    x, y = np.meshgrid(r - center[0], r - center[1])
    return x, y


def _normalize(k: np.ndarray) -> np.ndarray:
    """Zero taps below float eps of the peak, scale to sum 1, float32."""
    k = np.where(k < np.finfo(np.float64).eps * k.max(), 0.0, k)
    return (k / k.sum()).astype(np.float32)


def isotropic_gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """Isotropic Gaussian, ``(size, size)`` float32 summing to 1; ``sigma`` in pixels (> 0)."""
    x, y = _grid(size)
    return _normalize(np.exp(-(x * x + y * y) / (2.0 * sigma * sigma)))


def anisotropic_gaussian_kernel(size: int, var1: float, var2: float, theta: float) -> np.ndarray:
    """Anisotropic Gaussian with covariance ``R(theta) diag(var1, var2) R(theta)^T``.

    ``var1, var2``: eigenvalues (px^2, > 0); ``theta``: rotation of the first axis in radians.
    Returns ``(size, size)`` float32 summing to 1.
    """
    c, s = np.cos(theta), np.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    cov = rot @ np.diag([var1, var2]) @ rot.T
    inv = np.linalg.inv(cov)
    x, y = _grid(size)
    q = inv[0, 0] * x * x + 2.0 * inv[0, 1] * x * y + inv[1, 1] * y * y
    return _normalize(np.exp(-0.5 * q))


def shifted_gaussian_kernel(size: int, sigma: float, shift: float) -> np.ndarray:
    """Isotropic Gaussian whose mass is moved by ``shift`` px towards the upper-left corner.

    Used before nearest (``[::sf]``) decimation: convolving with it makes output pixel ``i`` sample
    the HR block centre ``i*sf + (sf-1)/2`` instead of its top-left pixel, i.e. it removes the
    half-block misalignment of nearest downsampling (``shift = (sf-1)/2``). The reference code
    gets the same kernel by interpolating a centred one; we evaluate the shifted Gaussian directly.
    """
    x, y = _grid(size, center=(-shift, -shift))
    return _normalize(np.exp(-(x * x + y * y) / (2.0 * sigma * sigma)))


def random_gaussian_kernel(rng: np.random.Generator) -> np.ndarray:
    """Paper blur kernel: isotropic or anisotropic (probability 1/2 each), random size in 7..21."""
    size = int(rng.choice(KERNEL_SIZES))
    if rng.random() < 0.5:
        return isotropic_gaussian_kernel(size, float(rng.uniform(*ISO_SIGMA_RANGE)))
    v1, v2 = rng.uniform(*ANISO_VAR_RANGE, size=2)
    return anisotropic_gaussian_kernel(size, float(v1), float(v2), float(rng.uniform(0.0, np.pi)))


def motion_blur_kernel(size: int, length: float, angle: float) -> np.ndarray:
    """Linear (uniform) motion blur along a segment of ``length`` px at ``angle`` radians.

    The segment is centred and drawn anti-aliased on an 8x supersampled canvas, then area-averaged
    down to ``(size, size)``; float32, sums to 1. ``length`` is clipped to ``size``.
    """
    up = 8
    canvas = np.zeros((size * up, size * up), np.float32)
    half = 0.5 * min(length, size - 1) * up
    c = (size * up - 1) / 2.0
    dx, dy = half * np.cos(angle), -half * np.sin(angle)
    p0 = (int(round((c - dx) * 16)), int(round((c - dy) * 16)))
    p1 = (int(round((c + dx) * 16)), int(round((c + dy) * 16)))
    cv2.line(canvas, p0, p1, 1.0, thickness=up, lineType=cv2.LINE_AA, shift=4)
    k = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA).astype(np.float64)
    return _normalize(np.maximum(k, 0.0))


def random_motion_kernel(rng: np.random.Generator) -> np.ndarray:
    """Random linear motion blur: size in {7..21}, length uniform in [3, size-1], any angle."""
    size = int(rng.choice(KERNEL_SIZES))
    length = float(rng.uniform(3.0, size - 1))
    return motion_blur_kernel(size, length, float(rng.uniform(0.0, np.pi)))
