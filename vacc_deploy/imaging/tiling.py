"""Seam-free tiled inference for fixed-input-shape models (torch-free).

A fixed-shape model (ONNX / VACC build with a static input of ``tile_hw``) cannot take a whole LR
image, so :func:`tiled_apply` cuts the image into tiles of exactly ``tile_hw``:

* tile origins lie on a grid of stride ``tile - overlap``; the last tile in each dimension is
  shifted back so it ends at the image border. Every tile therefore lies inside the image, and a
  tile touching the image border sees there the network's own zero padding, as the whole-image
  model does;
* a dimension smaller than the tile is padded at the bottom/right (``pad_mode``) up to the tile
  size; the padded part of the output is cropped;
* outputs are blended with separable weights. At an edge of a tile that lies *inside* the image,
  the weight is 0 over the outer quarter of the overlap band (those pixels saw the tile's artificial
  zero padding), rises linearly to 1 across the middle half of the band, and is 1 elsewhere. Weights
  are never reduced at image borders. Neighbouring ramps are complementary, and the result is
  normalized by the sum of weights, so identical tile outputs blend back exactly.

``DEFAULT_OVERLAP = 16`` LR pixels: 4 pixels at every inner tile edge are discarded and the
remaining 8 are cross-faded. The lightweight SR networks this tool targets have an *effective*
receptive field (where the influence of the zero padding is still visible) of a few pixels, well
inside the 4 + 8 pixels; an operator of radius ``r`` is reproduced exactly when
``overlap >= 4 * r``. Raise ``overlap`` for deeper networks (cost: more tiles).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from vacc_deploy.errors import ShapeError
from vacc_deploy.types import DEFAULT_OVERLAP  # the one default (its choice is explained above)

PAD_MODES = ("reflect", "edge", "constant")

RunBatch = Callable[[np.ndarray], np.ndarray]


def pad_to_multiple(image_chw: np.ndarray, multiple: int, mode: str = "reflect"
                    ) -> tuple[np.ndarray, tuple[int, int]]:
    """Pad a (C, H, W) image at the bottom/right so H and W are multiples of ``multiple``.

    Returns:
        (padded (C, H', W') array of the same dtype, original (H, W)). Crop the model output to
        ``(H * scale, W * scale)`` afterwards.
    """
    if multiple < 1:
        raise ShapeError(f"size multiple must be >= 1, got {multiple}")
    h, w = image_chw.shape[-2:]
    return _pad_to(image_chw, (-(-h // multiple) * multiple, -(-w // multiple) * multiple),
                   mode), (h, w)


def _pad_to(image_chw: np.ndarray, hw: tuple[int, int], mode: str) -> np.ndarray:
    """Pad (C, H, W) at the bottom/right up to at least ``hw``."""
    if mode not in PAD_MODES:
        raise ShapeError(f"pad mode must be one of {PAD_MODES}, got {mode!r}")
    ph, pw = max(0, hw[0] - image_chw.shape[1]), max(0, hw[1] - image_chw.shape[2])
    if ph == 0 and pw == 0:
        return image_chw
    if mode == "reflect" and (image_chw.shape[1] == 1 or image_chw.shape[2] == 1):
        mode = "edge"  # numpy cannot reflect a single row/column
    return np.pad(image_chw, ((0, 0), (0, ph), (0, pw)), mode=mode)  # type: ignore[call-overload]


def tile_origins(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` (>= tile) with given overlap.

    Stride is ``tile - overlap``; the last tile is shifted back to end exactly at ``length``.
    """
    if length <= tile:
        return [0]
    stride = tile - overlap
    origins = list(range(0, length - tile, stride))
    origins.append(length - tile)
    return origins


def _ramp_1d(n_out: int, band_out: int, inner_start: bool, inner_end: bool) -> np.ndarray:
    """Weight profile (n_out,) of one tile along one axis, in output pixels.

    Zero over the outer quarter of the overlap band, linear over the middle half, 1 inside;
    only on sides that are inside the image (``inner_start`` / ``inner_end``).
    """
    w = np.ones(n_out, dtype=np.float64)
    if band_out <= 0:
        return w
    d = np.arange(n_out, dtype=np.float64) + 0.5  # distance of the pixel centre from the start
    ramp = lambda dist: np.clip((dist - band_out / 4.0) / (band_out / 2.0), 0.0, 1.0)  # noqa: E731
    if inner_start:
        w = np.minimum(w, ramp(d))
    if inner_end:
        w = np.minimum(w, ramp(n_out - d))
    return w


def _check_args(image_chw: np.ndarray, tile_hw: tuple[int, int], scale: int, overlap: int,
                batch_size: int, size_multiple: int) -> None:
    if image_chw.ndim != 3 or min(image_chw.shape) == 0:
        raise ShapeError(f"tiled_apply expects a non-empty (C, H, W) image, got {image_chw.shape}")
    th, tw = tile_hw
    if th < 1 or tw < 1 or scale < 1 or batch_size < 1 or overlap < 0:
        raise ShapeError(f"bad tiling: tile {tile_hw}, scale {scale}, overlap {overlap}, "
                         f"batch {batch_size}")
    if th % size_multiple or tw % size_multiple:
        raise ShapeError(f"tile {th}x{tw} is not a multiple of the model's size multiple "
                         f"{size_multiple}")


def _run(run_batch: RunBatch, tiles: list[np.ndarray], batch_size: int,
         want: tuple[int, int, int]) -> list[np.ndarray]:
    """Run tiles in groups of ``batch_size``; a short last group is filled up by repeating its
    last tile (for models with a fixed batch dimension) and the extra outputs are dropped."""
    outs: list[np.ndarray] = []
    for i in range(0, len(tiles), batch_size):
        group = tiles[i:i + batch_size]
        n = len(group)
        group = group + [group[-1]] * (batch_size - n)
        res = np.asarray(run_batch(np.stack(group).astype(np.float32, copy=False)))
        if res.shape != (batch_size,) + want:
            raise ShapeError(f"model returned shape {res.shape}, expected {(batch_size,) + want}")
        outs.extend(res[:n])
    return outs


def tiled_apply(image_chw: np.ndarray, run_batch: RunBatch, tile_hw: tuple[int, int],
                scale: int, overlap: int = DEFAULT_OVERLAP, batch_size: int = 1,
                pad_mode: str = "reflect", size_multiple: int = 1) -> np.ndarray:
    """Run a fixed-shape SR model over a whole image by blending overlapping tiles.

    Args:
        image_chw: float32 (C, H, W) image, in whatever value range the model takes.
        run_batch: model call: float32 (N, C, th, tw) -> (N, C, th*scale, tw*scale), N == batch_size.
        tile_hw: the model's fixed input (th, tw); must be multiples of ``size_multiple``.
        scale: SR factor (1 for restoration models).
        overlap: overlap of neighbouring tiles in LR pixels, clamped to half the tile.
        batch_size: tiles per model call (use 1 when the model only takes N = 1).
        pad_mode: ``reflect``, ``edge`` or ``constant`` for dimensions smaller than the tile.
        size_multiple: the model's size multiple (checked against ``tile_hw``).

    Returns:
        float32 (C, H*scale, W*scale).
    """
    _check_args(image_chw, tile_hw, scale, overlap, batch_size, size_multiple)
    c, h, w = image_chw.shape
    th, tw = tile_hw
    padded = _pad_to(image_chw, (th, tw), pad_mode)
    ph, pw = padded.shape[1:]
    ov_h, ov_w = min(overlap, th // 2), min(overlap, tw // 2)
    ys, xs = tile_origins(ph, th, ov_h), tile_origins(pw, tw, ov_w)
    boxes = [(y, x) for y in ys for x in xs]
    outs = _run(run_batch, [padded[:, y:y + th, x:x + tw] for y, x in boxes], batch_size,
                (c, th * scale, tw * scale))
    acc = np.zeros((c, ph * scale, pw * scale), dtype=np.float64)
    wsum = np.zeros((ph * scale, pw * scale), dtype=np.float64)
    for (y, x), out in zip(boxes, outs):
        wy = _ramp_1d(th * scale, ov_h * scale, y > 0, y + th < ph)
        wx = _ramp_1d(tw * scale, ov_w * scale, x > 0, x + tw < pw)
        wt = wy[:, None] * wx[None, :]
        sy, sx = slice(y * scale, (y + th) * scale), slice(x * scale, (x + tw) * scale)
        acc[:, sy, sx] += out * wt
        wsum[sy, sx] += wt
    return (acc / wsum)[:, : h * scale, : w * scale].astype(np.float32)
