"""Individual degradations of the BSRGAN model, each usable (and tested) on its own.

Images are float32 ``(H, W, 3)`` RGB arrays in [0, 1]; every function returns a new float32 array
clipped to [0, 1] (the input is never modified). Randomness always comes from an explicit
``np.random.Generator``.
"""

from __future__ import annotations

import cv2
import numpy as np

from .kernels import random_gaussian_kernel, shifted_gaussian_kernel

RESIZE_MODES: dict[str, int] = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
}
# The reference code draws its resize interpolation from cv2 flags {1, 2, 3} = bilinear, bicubic,
# area; nearest downsampling is its separate shifted-kernel path (nearest_downsample_shifted).
PIPELINE_RESIZE_MODES: tuple[str, ...] = ("bilinear", "bicubic", "area")
NOISE_LEVEL_RANGE: tuple[int, int] = (2, 25)  # sigma in 1/255 units, paper Sec. 3.1
JPEG_QUALITY_RANGE: tuple[int, int] = (30, 95)  # paper Sec. 3.1
SHOT_NOISE_RANGE: tuple[float, float] = (1e-4, 1.2e-2)  # Brooks et al. 2019 (unprocessing)


def _clip(img: np.ndarray) -> np.ndarray:
    return np.clip(img, 0.0, 1.0).astype(np.float32, copy=False)


def apply_kernel(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve each channel with ``kernel`` (true convolution, reflected border). Same shape."""
    flipped = np.ascontiguousarray(kernel[::-1, ::-1], dtype=np.float32)
    out = cv2.filter2D(img.astype(np.float32), -1, flipped, borderType=cv2.BORDER_REFLECT_101)
    return _clip(out)


def add_blur(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur with a random isotropic/anisotropic Gaussian kernel (paper ranges, see kernels.py)."""
    return apply_kernel(img, random_gaussian_kernel(rng))


def resize(img: np.ndarray, size_hw: tuple[int, int], mode: str) -> np.ndarray:
    """Resize to ``size_hw = (h, w)`` with ``mode`` in nearest | bilinear | bicubic | area (OpenCV)."""
    h, w = size_hw
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode must be one of {sorted(RESIZE_MODES)}, got {mode!r}")
    if (h, w) == img.shape[:2]:
        return _clip(img.copy())
    return _clip(cv2.resize(img, (w, h), interpolation=RESIZE_MODES[mode]))


def downsample(img: np.ndarray, sf: int, mode: str) -> np.ndarray:
    """Downsample by integer ``sf``: ``(H, W, 3) -> (H//sf, W//sf, 3)`` with the given ``mode``."""
    return resize(img, (img.shape[0] // sf, img.shape[1] // sf), mode)


def nearest_downsample_shifted(img: np.ndarray, sf: int, sigma: float) -> np.ndarray:
    """Paper's nearest downsampling: blur with a 21x21 Gaussian (width ``sigma``) shifted by
    ``(sf-1)/2`` px, then keep every ``sf``-th pixel; ``(H, W, 3) -> (ceil(H/sf), ceil(W/sf), 3)``.

    The shift aligns the decimated grid with the centre of each ``sf x sf`` block, like bicubic.
    """
    k = shifted_gaussian_kernel(21, sigma, (sf - 1) / 2.0)
    return np.ascontiguousarray(apply_kernel(img, k)[::sf, ::sf])


def add_gaussian_noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Channel-independent additive white Gaussian noise, std ``sigma`` (in [0,1] units)."""
    return _clip(img + rng.normal(0.0, sigma, img.shape).astype(np.float32))


def add_gray_noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """The same Gaussian noise field (std ``sigma``) added to all three channels."""
    return _clip(img + rng.normal(0.0, sigma, (*img.shape[:2], 1)).astype(np.float32))


def random_noise_covariance(sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Paper's general 3D noise covariance ``sigma^2 * U^T diag(d) U``: ``U`` a random orthogonal
    3x3 matrix (QR of a Gaussian matrix), ``d`` uniform in [0, 1]^3. Returns (3, 3) PSD float64."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    u = q * np.sign(np.diag(r))
    return sigma * sigma * (u.T @ np.diag(rng.uniform(0.0, 1.0, 3)) @ u)


def add_correlated_noise(img: np.ndarray, cov: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add zero-mean 3D Gaussian noise with (3, 3) channel covariance ``cov`` to each pixel."""
    w, v = np.linalg.eigh(cov)
    root = v * np.sqrt(np.clip(w, 0.0, None))  # cov = root @ root.T
    z = rng.standard_normal((*img.shape[:2], 3))
    return _clip(img + (z @ root.T).astype(np.float32))


def add_random_gaussian_noise(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Paper's Gaussian noise: level uniform in {2..25}/255; channel-independent (p=0.4),
    grayscale (p=0.4) or general correlated 3D (p=0.2) as in the reference code."""
    sigma = int(rng.integers(NOISE_LEVEL_RANGE[0], NOISE_LEVEL_RANGE[1] + 1)) / 255.0
    u = rng.random()
    if u < 0.4:
        return add_gaussian_noise(img, sigma, rng)
    if u < 0.8:
        return add_gray_noise(img, sigma, rng)
    return add_correlated_noise(img, random_noise_covariance(sigma, rng), rng)


def add_jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip through OpenCV at ``quality`` (1..100), 4:2:0 as cv2 defaults."""
    u8 = cv2.cvtColor((np.clip(img, 0, 1) * 255.0).round().astype(np.uint8), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", u8, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise RuntimeError("cv2.imencode('.jpg') failed")
    out = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return out.astype(np.float32) / 255.0


def add_random_jpeg(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """JPEG with quality uniform in the paper's [30, 95]."""
    return add_jpeg(img, int(rng.integers(JPEG_QUALITY_RANGE[0], JPEG_QUALITY_RANGE[1] + 1)))


def add_sensor_noise(img: np.ndarray, shot: float, read: float, rng: np.random.Generator) -> np.ndarray:
    """Simplified camera sensor noise (Poisson-Gaussian, heteroscedastic Gaussian approximation).

    The sRGB image is linearised with a 2.2 gamma, noise of variance ``shot * x + read`` is added per
    pixel and channel, and the gamma is re-applied. SIMPLIFICATION: the paper's reverse/forward ISP
    (inverse tone map, inverse CCM/white balance, mosaicking, demosaicking) is NOT implemented, so
    the noise is not spatially correlated by demosaicking and not colour-mixed by the CCM.
    """
    lin = np.power(np.clip(img, 0.0, 1.0), 2.2)
    std = np.sqrt(shot * lin + read)
    noisy = np.clip(lin + std * rng.standard_normal(img.shape), 0.0, 1.0)
    return _clip(np.power(noisy, 1.0 / 2.2))


def add_random_sensor_noise(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sensor noise with Brooks et al.'s sampling: log shot noise uniform in [1e-4, 1.2e-2],
    log read noise = 2.18 * log shot + 1.20 + N(0, 0.26^2)."""
    log_shot = rng.uniform(np.log(SHOT_NOISE_RANGE[0]), np.log(SHOT_NOISE_RANGE[1]))
    log_read = 2.18 * log_shot + 1.20 + rng.normal(0.0, 0.26)
    return add_sensor_noise(img, float(np.exp(log_shot)), float(np.exp(log_read)), rng)
