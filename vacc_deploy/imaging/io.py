"""Reading and writing images (torch-free, OpenCV codecs).

Internal representation (:class:`Image`): RGB float32 in [0, 1], alpha kept separately.

RGBA policy: the network only sees the RGB planes. The alpha plane is upscaled on its own with
bicubic interpolation (``cv2.INTER_CUBIC``) to the output size and clipped to [0, 1]
(:func:`upscale_alpha`), then written back with the SR result (:func:`write_image` ``alpha=``).
Grayscale images are replicated to three channels for the network; ``was_gray`` lets the writer
store the result as grayscale again (BT.601 luma of the RGB output, as ``cv2.COLOR_RGB2GRAY``).

JPEG EXIF orientation is not applied (images are read as stored, ``IMREAD_UNCHANGED``).
All writes are atomic: encoded in memory, written to a temporary file in the target folder, then
moved into place with ``os.replace``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from vacc_deploy.artifacts import atomic_path
from vacc_deploy.errors import ImageError, ShapeError

Conversion = Literal["round", "truncate"]
_MAX = {8: 255, 16: 65535}
_SIXTEEN_BIT_EXTS = (".png", ".tif", ".tiff")


@dataclass
class Image:
    """A decoded image.

    Attributes:
        rgb: float32 HxWx3 in [0, 1], RGB order (grayscale replicated to 3 channels).
        alpha: float32 HxW in [0, 1], or None when the file has no alpha.
        bit_depth: 8 or 16 (bits per sample in the file).
        was_gray: True when the file stores a single luminance channel (with or without alpha).
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    bit_depth: int
    was_gray: bool


def _decode(path: Path) -> np.ndarray:
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise ImageError(f"cannot read image {path}: {exc.strerror or exc}") from exc
    if data.size == 0:
        raise ImageError(f"cannot read image {path}: file is empty")
    try:
        arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:  # e.g. a header claiming more pixels than OpenCV decodes
        raise ImageError(f"cannot decode image {path}: {_cv_reason(exc)}") from exc
    if arr is None or arr.size == 0:
        raise ImageError(f"cannot decode image {path}: not a valid or supported image file")
    return arr


def _cv_reason(exc: Exception) -> str:
    """A one-line reason for an OpenCV decoding error."""
    text = str(exc)
    if "CV_IO_MAX_IMAGE_PIXELS" in text or "validateInputImageSize" in text:
        return "its header claims a size larger than OpenCV decodes (over 2^30 pixels)"
    if "Insufficient memory" in text or "Failed to allocate" in text:
        return "not enough memory to decode it"
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return f"not a valid or supported image file ({lines[-1][:160] if lines else 'OpenCV error'})"


def _png_is_gray_alpha(path: Path) -> bool:
    """True for a PNG whose IHDR colour type is 4 (grey + alpha); OpenCV decodes it as BGRA."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(26)
    except OSError:
        return False
    return len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[25] == 4


def read_image(path: str | os.PathLike[str]) -> Image:
    """Read an 8- or 16-bit PNG, JPEG, BMP, TIFF or WebP file into an :class:`Image`.

    Raises:
        ImageError: the file is missing, empty, corrupt, or has an unsupported sample type.
    """
    path = Path(path)
    arr = _decode(path)
    if arr.dtype == np.uint8:
        depth = 8
    elif arr.dtype == np.uint16:
        depth = 16
    else:
        raise ImageError(f"unsupported sample type {arr.dtype} in image {path} (need 8 or 16 bit)")
    scaled = arr.astype(np.float32) / np.float32(_MAX[depth])
    if scaled.ndim == 3 and scaled.shape[2] == 1:
        scaled = scaled[..., 0]
    alpha = None
    if scaled.ndim == 2:
        rgb, gray = np.repeat(scaled[..., None], 3, axis=2), True
    elif scaled.shape[2] == 2:
        rgb, alpha, gray = np.repeat(scaled[..., :1], 3, axis=2), scaled[..., 1], True
    elif scaled.shape[2] in (3, 4):
        rgb, gray = np.ascontiguousarray(scaled[..., 2::-1]), False
        alpha = scaled[..., 3] if scaled.shape[2] == 4 else None
        gray = alpha is not None and _png_is_gray_alpha(path)
    else:
        raise ImageError(f"unsupported channel count {scaled.shape[2]} in image {path}")
    if alpha is not None:
        alpha = np.ascontiguousarray(alpha)
    return Image(rgb=np.ascontiguousarray(rgb), alpha=alpha, bit_depth=depth, was_gray=gray)


def to_uint(rgb_float: np.ndarray, bit_depth: int = 8, conversion: Conversion = "round"
            ) -> np.ndarray:
    """Float image in [0, 1] (any shape) to uint8 / uint16.

    ``round``: ``rint(clip(x * max, 0, max))`` (round half to even, like numpy/torch ``round``).
    ``truncate``: floor after clamping, like torch ``x.mul(255).clamp(0, 255).byte()``.
    The multiplication happens in the input's float dtype (float32 stays float32, as in torch).
    """
    if bit_depth not in _MAX:
        raise ShapeError(f"bit_depth must be 8 or 16, got {bit_depth}")
    if conversion not in ("round", "truncate"):
        raise ShapeError(f"conversion must be 'round' or 'truncate', got {conversion!r}")
    x = np.asarray(rgb_float)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    peak = _MAX[bit_depth]
    y = np.clip(x * x.dtype.type(peak), 0, peak)
    y = np.rint(y) if conversion == "round" else np.floor(y)
    return y.astype(np.uint8 if bit_depth == 8 else np.uint16)


def upscale_alpha(alpha: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Resize a float alpha plane (HxW in [0, 1]) to ``out_hw`` with cv2 bicubic, clipped to [0, 1]."""
    out = cv2.resize(alpha.astype(np.float32), (out_hw[1], out_hw[0]),
                     interpolation=cv2.INTER_CUBIC)
    return np.clip(out, 0.0, 1.0)


def _compose(rgb: np.ndarray, alpha: np.ndarray | None, gray: bool) -> np.ndarray:
    """Array in OpenCV channel layout (gray, BGR or BGRA) from RGB + optional alpha."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype not in (np.uint8, np.uint16):
        raise ShapeError(f"write_image expects uint8/uint16 HxWx3 RGB, got {rgb.dtype} {rgb.shape}")
    if gray:
        planes = [cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)]
        if alpha is not None:  # PNG writers in OpenCV have no gray+alpha: store as BGRA
            planes = planes * 3
    else:
        planes = [rgb[..., 2], rgb[..., 1], rgb[..., 0]]
    if alpha is not None:
        if alpha.shape != rgb.shape[:2]:
            raise ShapeError(f"alpha shape {alpha.shape} does not match image {rgb.shape[:2]}")
        if np.issubdtype(alpha.dtype, np.floating):
            alpha = to_uint(alpha, 8 if rgb.dtype == np.uint8 else 16, "round")
        planes.append(alpha.astype(rgb.dtype))
    return planes[0] if len(planes) == 1 else np.dstack(planes)


def write_image(path: str | os.PathLike[str], rgb_uint: np.ndarray,
                alpha: np.ndarray | None = None, gray: bool = False) -> None:
    """Write an image atomically; the format follows the file extension.

    Args:
        rgb_uint: uint8 or uint16 HxWx3 RGB (uint16 is written as 16-bit where the format allows).
        alpha: HxW alpha, same integer dtype as ``rgb_uint`` or float in [0, 1]; written as RGBA.
        gray: store a single luminance channel (BT.601 luma of ``rgb_uint``).
    """
    path = Path(path)
    ext = (path.suffix or ".png").lower()
    if rgb_uint.dtype == np.uint16 and ext not in _SIXTEEN_BIT_EXTS:
        raise ImageError(f"cannot write 16-bit image {path}: use .png or .tif, not {ext}")
    arr = _compose(rgb_uint, alpha, gray)
    try:
        ok, buf = cv2.imencode(path.suffix or ".png", arr)
    except cv2.error as exc:
        raise ImageError(f"cannot encode image {path}: {str(exc).strip().splitlines()[-1]}") from exc
    if not ok:
        raise ImageError(f"cannot encode image {path} as {path.suffix or '.png'}")
    _atomic_write(path, buf.tobytes())


def _atomic_write(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
