"""The BSRGAN degradation pipeline and the simple bicubic / x1-blur pair generators.

Procedure (Zhang et al., ICCV 2021, arXiv 2103.14006, Sec. 3 and the reference code
``cszn/BSRGAN utils/utils_blindsr.py``; this is an independent re-implementation):

1. mod-crop the HQ image to a multiple of ``sf``; for ``sf == 4`` with probability 0.25 first
   downsample by 2 (random interpolation) and continue with ``sf = 2``;
2. apply seven steps in random order: blur1, blur2, downsample-2, downsample-3, Gaussian noise,
   JPEG (p = 0.9), camera sensor noise (p = 0.25); downsample-2 always precedes downsample-3:
   downsample-2 either resizes by 1/sf1 with sf1 ~ U(1, 2 sf) (p = 0.75), which together with
   downsample-3 (resize to exactly 1/sf of the HQ) is the paper's down-up scaling, or does the
   shift-corrected nearest downsampling by sf (p = 0.25, Gaussian width ~ U(0.1, 0.6 sf));
3. a final JPEG compression (quality ~ U[30, 95]); 4. an optional aligned random patch crop.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError, UsageError
from . import ops
from .kernels import random_gaussian_kernel, random_motion_kernel

SCALES: tuple[int, ...] = (1, 2, 3, 4)
STEP_NAMES: tuple[str, ...] = ("blur1", "blur2", "down2", "down3", "noise", "jpeg", "sensor")
SCALE2_PROB, JPEG_PROB, SENSOR_PROB, NEAREST_PROB = 0.25, 0.9, 0.25, 0.25

RngLike = np.random.Generator | int


def as_rng(rng: RngLike) -> np.random.Generator:
    """A Generator from a Generator (used as is) or an int seed (``np.random.default_rng``)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        if rng < 0:
            raise UsageError(f"seed must be >= 0, got {rng}")
        return np.random.default_rng(int(rng))
    raise UsageError(f"rng must be a numpy Generator or an int seed, got {type(rng).__name__}")


def check_image(img: np.ndarray) -> np.ndarray:
    """Validate an ``(H, W, 3)`` image in [0, 1]; return it as float32 (a copy)."""
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
        shape = getattr(img, "shape", None)
        raise ShapeError(f"image must be an HxWx3 RGB array, got shape {shape}")
    return np.clip(img.astype(np.float32), 0.0, 1.0)


def mod_crop(img: np.ndarray, sf: int) -> np.ndarray:
    """Crop the bottom/right so that H and W are multiples of ``sf``: ``(H - H%sf, W - W%sf, C)``."""
    h, w = img.shape[:2]
    return img[: h - h % sf, : w - w % sf]


def _check_sf(sf: int, hq: np.ndarray, lq_patch: int | None) -> None:
    """Raise UsageError/ShapeError for an unsupported scale or an image too small for a patch."""
    if sf not in SCALES:
        raise UsageError(f"sf must be one of {SCALES}, got {sf!r}")
    need = sf * (lq_patch if lq_patch is not None else 1)
    if lq_patch is not None and lq_patch < 1:
        raise UsageError(f"lq_patch must be >= 1, got {lq_patch}")
    if min(hq.shape[:2]) < need:
        raise ShapeError(f"image {hq.shape[1]}x{hq.shape[0]} is smaller than {need}x{need} "
                         f"needed for sf={sf}, lq_patch={lq_patch}")


def _downsample2(img: np.ndarray, sf: int, rng: np.random.Generator) -> np.ndarray:
    """First stage of the two-stage resize: random 1/sf1 resize or shift-corrected nearest."""
    if rng.random() >= NEAREST_PROB:
        sf1 = rng.uniform(1.0, 2.0 * sf)
        h, w = (max(1, int(d / sf1)) for d in img.shape[:2])
        return ops.resize(img, (h, w), str(rng.choice(ops.PIPELINE_RESIZE_MODES)))
    return ops.nearest_downsample_shifted(img, sf, float(rng.uniform(0.1, 0.6 * sf)))


def _shuffled_order(rng: np.random.Generator) -> list[int]:
    """A random permutation of the 7 steps with step 2 (downsample-2) before step 3."""
    order = [int(i) for i in rng.permutation(7)]
    i2, i3 = order.index(2), order.index(3)
    if i2 > i3:
        order[i2], order[i3] = 3, 2
    return order


def _apply_step(step: int, img: np.ndarray, sf: int, lq_hw: tuple[int, int],
                rng: np.random.Generator) -> np.ndarray:
    """Run one of the seven shuffled steps (0, 1: blur; 2, 3: resize; 4-6: noise)."""
    if step in (0, 1):
        return ops.add_blur(img, rng)
    if step == 2:
        return _downsample2(img, sf, rng)
    if step == 3:
        return ops.resize(img, lq_hw, str(rng.choice(ops.PIPELINE_RESIZE_MODES)))
    if step == 4:
        return ops.add_random_gaussian_noise(img, rng)
    if step == 5:
        return ops.add_random_jpeg(img, rng) if rng.random() < JPEG_PROB else img
    return ops.add_random_sensor_noise(img, rng) if rng.random() < SENSOR_PROB else img


def random_aligned_crop(lq: np.ndarray, hq: np.ndarray, sf: int, lq_patch: int,
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Crop an aligned pair: ``lq`` (p, p, 3) and ``hq`` (sf p, sf p, 3) at the same position."""
    y = int(rng.integers(0, lq.shape[0] - lq_patch + 1))
    x = int(rng.integers(0, lq.shape[1] - lq_patch + 1))
    lq_c = lq[y: y + lq_patch, x: x + lq_patch]
    hq_c = hq[y * sf: (y + lq_patch) * sf, x * sf: (x + lq_patch) * sf]
    return np.ascontiguousarray(lq_c), np.ascontiguousarray(hq_c)


def degrade_bsrgan(hq: np.ndarray, sf: int, rng: RngLike, lq_patch: int | None = None,
                   trace: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """BSRGAN degradation of a float32 ``(H, W, 3)`` RGB image in [0, 1] (see module docstring).

    Returns ``(lq, hq)``, float32 in [0, 1]: ``hq`` is the input mod-cropped to a multiple of ``sf``
    ``(H', W', 3)`` and ``lq`` is ``(H'/sf, W'/sf, 3)``; with ``lq_patch`` an aligned random pair of
    ``(lq_patch, lq_patch, 3)`` and ``(sf*lq_patch, sf*lq_patch, 3)`` is cropped. The same seed (or a
    Generator in the same state) gives identical output. ``trace``, if given, receives the names
    of the steps in the order run (a step whose random draw skipped it is still listed).
    """
    rng = as_rng(rng)
    hq = mod_crop(check_image(hq), sf) if sf in SCALES else hq
    _check_sf(sf, hq, lq_patch)
    lq_hw = (hq.shape[0] // sf, hq.shape[1] // sf)
    img, cur_sf = hq.copy(), sf
    if sf == 4 and rng.random() < SCALE2_PROB:
        img = ops.downsample(img, 2, str(rng.choice(ops.PIPELINE_RESIZE_MODES)))
        cur_sf = 2
    order = _shuffled_order(rng)
    if trace is not None:
        trace.extend((["down1(x2)"] if cur_sf != sf else []) + [STEP_NAMES[i] for i in order])
    for step in order:
        img = _apply_step(step, img, cur_sf, lq_hw, rng)
    lq = ops.add_random_jpeg(img, rng)
    if lq.shape[:2] != lq_hw:  # cannot happen with mod-cropped input; kept as a guard
        raise ShapeError(f"internal: LQ shape {lq.shape[:2]} != expected {lq_hw}")
    if lq_patch is not None:
        lq, hq = random_aligned_crop(lq, hq, sf, lq_patch, rng)
    return lq.astype(np.float32), hq.astype(np.float32)


def degrade_bicubic(hq: np.ndarray, sf: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain bicubic downsampling: returns ``(lq (H'/sf, W'/sf, 3), hq mod-cropped (H', W', 3))``.

    Uses ``cv2.INTER_CUBIC`` (Keys a = -0.75, no anti-aliasing), which is NOT MATLAB ``imresize``
    (a = -0.5 with an anti-aliasing kernel); fine for calibration images, not for benchmark LR sets.
    """
    hq = mod_crop(check_image(hq), sf) if sf in SCALES else hq
    _check_sf(sf, hq, None)
    return ops.downsample(hq, sf, "bicubic"), hq


def degrade_blur(hq: np.ndarray, rng: RngLike) -> tuple[np.ndarray, np.ndarray]:
    """x1 deblurring pair: ``(blurred (H, W, 3), hq (H, W, 3))`` float32 in [0, 1].

    The kernel is a paper Gaussian (isotropic/anisotropic, p = 0.5) or a linear motion blur
    (length ~ U[3, size-1] px, angle ~ U[0, pi), size in 7..21), p = 0.5.
    """
    rng = as_rng(rng)
    hq = check_image(hq)
    k = random_gaussian_kernel(rng) if rng.random() < 0.5 else random_motion_kernel(rng)
    return ops.apply_kernel(hq, k), hq
