"""Crops of the worst images: where does int8 depart most from fp32?

:func:`worst_images` ranks images by the PSNR drop int8 vs fp32 (from the eval's per-image results);
:func:`crop_window` finds the window (default 96x96 HR pixels) where |int8 - fp32| is largest (box
filter over the per-pixel mean absolute difference); :func:`crop_pngs` cuts LR (nearest-upscaled) /
fp32 / int8 / HR crops of that window and draws the |int8 - fp32| heat map, all as PNG bytes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vacc_deploy.artifacts import atomic_write_bytes
from vacc_deploy.report.model import CropSet
from vacc_deploy.report.plots import heatmap_png


def _num(v: Any) -> float:
    """A metric value as float ("inf" strings from JSON included)."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def worst_images(eval_result: dict[str, Any], n: int = 3) -> list[dict[str, Any]]:
    """The ``n`` images with the largest PSNR drop int8 vs fp32 (any int8 candidate; the worst one per
    image). Each: ``{image, precision, quant, backend, psnr_drop, psnr_fp32, psnr_int8}``."""
    per = eval_result.get("per_image") or []
    ref = {r["image"]: _num(r["psnr"]) for r in per if r.get("precision") == "fp32"}
    worst: dict[str, dict[str, Any]] = {}
    for r in per:
        if r.get("precision") != "int8" or r["image"] not in ref:
            continue
        drop = ref[r["image"]] - _num(r["psnr"])
        if math.isnan(drop):
            continue
        if r["image"] not in worst or drop > worst[r["image"]]["psnr_drop"]:
            worst[r["image"]] = {"image": r["image"], "precision": "int8", "quant": r.get("quant"),
                                 "backend": r.get("backend"), "psnr_drop": drop,
                                 "psnr_fp32": ref[r["image"]], "psnr_int8": _num(r["psnr"])}
    return sorted(worst.values(), key=lambda w: -w["psnr_drop"])[:n]


def crop_window(sr_fp32: np.ndarray, sr_int8: np.ndarray, size: int = 96,
                align: int = 1) -> tuple[int, int, int]:
    """``(y, x, side)`` of the square window where the summed |int8 - fp32| is largest.

    ``side`` is ``size`` clipped to the image and rounded down to a multiple of ``align`` (the scale),
    and ``y``, ``x`` are multiples of ``align`` so the LR crop lines up with the HR crop."""
    diff = np.abs(sr_int8.astype(np.float32) - sr_fp32.astype(np.float32))
    diff = diff.mean(axis=2) if diff.ndim == 3 else diff
    h, w = diff.shape
    side = max(align, (min(size, h, w) // align) * align)
    integral = cv2.integral(diff.astype(np.float64))
    sums = (integral[side:, side:] - integral[:-side, side:] - integral[side:, :-side] + integral[:-side, :-side])
    sums = sums[::align, ::align]
    iy, ix = np.unravel_index(int(np.argmax(sums)), sums.shape)
    y, x = int(iy) * align, int(ix) * align
    y, x = _recenter(diff, y, x, side, align)
    return y, x, side


def _recenter(diff: np.ndarray, y: int, x: int, side: int, align: int) -> tuple[int, int]:
    """Move the best window so that its centre is on the centre of mass of the differences inside it
    (many windows tie when the differences are concentrated), keeping it in the image and aligned."""
    win = diff[y:y + side, x:x + side]
    total = float(win.sum())
    if total <= 0:
        return y, x
    cy = y + float((win.sum(axis=1) * np.arange(side)).sum()) / total
    cx = x + float((win.sum(axis=0) * np.arange(side)).sum()) / total
    h, w = diff.shape
    ny = int(np.clip(round(cy - side / 2), 0, h - side)) // align * align
    nx = int(np.clip(round(cx - side / 2), 0, w - side)) // align * align
    return ny, nx


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of a uint8 RGB (or gray) image."""
    img = np.ascontiguousarray(rgb[..., ::-1] if rgb.ndim == 3 else rgb)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def crop_pngs(lr: np.ndarray, hr: np.ndarray, sr_fp32: np.ndarray, sr_int8: np.ndarray,
              size: int = 96) -> tuple[dict[str, bytes], dict[str, Any]]:
    """PNG bytes of the crops ``lr`` (nearest-upscaled), ``fp32``, ``int8``, ``hr`` and ``heatmap``
    (|int8 - fp32|) at the worst window, and ``{"window": [y, x, h, w], "max_abs": float}``.

    All inputs are uint8 RGB; SR outputs and HR are cut to their common size first."""
    h = min(hr.shape[0], sr_fp32.shape[0], sr_int8.shape[0])
    w = min(hr.shape[1], sr_fp32.shape[1], sr_int8.shape[1])
    hr, sr_fp32, sr_int8 = hr[:h, :w], sr_fp32[:h, :w], sr_int8[:h, :w]
    scale = max(1, round(h / lr.shape[0]))
    y, x, side = crop_window(sr_fp32, sr_int8, size, scale)
    lr_crop = lr[y // scale:(y + side) // scale, x // scale:(x + side) // scale]
    lr_up = cv2.resize(lr_crop, (side, side), interpolation=cv2.INTER_NEAREST)
    win = (slice(y, y + side), slice(x, x + side))
    diff = np.abs(sr_int8[win].astype(np.int16) - sr_fp32[win].astype(np.int16))
    diff = diff.max(axis=2) if diff.ndim == 3 else diff
    pngs = {"lr": encode_png(lr_up), "fp32": encode_png(sr_fp32[win]), "int8": encode_png(sr_int8[win]),
            "hr": encode_png(hr[win]), "heatmap": heatmap_png(diff)}
    return pngs, {"window": [y, x, side, side], "max_abs": float(diff.max())}


def make_crop_set(worst: dict[str, Any], lr: np.ndarray, hr: np.ndarray, sr_fp32: np.ndarray,
                  sr_int8: np.ndarray, assets_dir: Path, size: int = 96) -> CropSet:
    """Write the crops of one worst image (an entry of :func:`worst_images`) as PNG files in
    ``assets_dir`` and return the :class:`CropSet` that points at them."""
    pngs, info = crop_pngs(lr, hr, sr_fp32, sr_int8, size)
    stem = "crop_" + "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(worst["image"]).stem)
    paths: dict[str, str] = {}
    for name, data in pngs.items():
        path = Path(assets_dir) / f"{stem}_{name}.png"
        atomic_write_bytes(path, data)
        paths[name] = str(path)
    return CropSet(image=worst["image"], precision=worst.get("precision", "int8"), quant=worst.get("quant"),
                   backend=worst.get("backend"), psnr_drop=worst.get("psnr_drop"), max_abs=info["max_abs"],
                   window=info["window"], **paths)
