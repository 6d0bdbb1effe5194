"""Conversion between images and network tensors, driven by a row's :class:`ModelSpec`.

This is the one implementation of the network-side conventions that export, run, eval and
calibration share: channel order, value range, NCHW layout. Torch-free.
"""

from __future__ import annotations

import numpy as np

from vacc_deploy.spec import ModelSpec


def to_network(rgb: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """RGB float image (H, W, 3) in [0, 1] → network input (1, 3, H, W) float32.

    Channels are reordered to ``spec.channel_order`` and values scaled to ``spec.value_range``.
    """
    img = rgb[..., ::-1] if spec.channel_order == "BGR" else rgb
    img = np.asarray(img, dtype=np.float32) * np.float32(spec.value_range)
    return np.ascontiguousarray(img.transpose(2, 0, 1)[None])


def from_network(out: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """Network output (1, 3, H, W) or (3, H, W) → RGB float image (H, W, 3) on the [0, 1] scale.

    Not clipped: the caller converts to integers with the row's official conversion.
    """
    chw = out[0] if out.ndim == 4 else out
    img = chw.transpose(1, 2, 0).astype(np.float32) / np.float32(spec.value_range)
    return img[..., ::-1] if spec.channel_order == "BGR" else img


def sample_image() -> np.ndarray:
    """A real photograph shipped with scikit-image (``astronaut``, public domain, 512x512), as RGB
    float32 in [0, 1]. Used for export parity checks and offline demos."""
    from skimage import data

    return data.astronaut().astype(np.float32) / 255.0


def crop_or_cover(rgb: np.ndarray, h: int, w: int) -> np.ndarray:
    """A centred h x w crop of ``rgb``; an image smaller than that is first enlarged (bicubic,
    keeping its aspect ratio) to cover it."""
    import cv2

    ih, iw = rgb.shape[:2]
    factor = max(h / ih, w / iw, 1.0)
    if factor > 1.0:
        size = (max(w, round(iw * factor)), max(h, round(ih * factor)))
        rgb = np.clip(cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC), 0.0, 1.0)
        ih, iw = rgb.shape[:2]
    y, x = (ih - h) // 2, (iw - w) // 2
    return np.ascontiguousarray(rgb[y : y + h, x : x + w])
