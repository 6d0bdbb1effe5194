"""The baseline a house checkpoint must beat: MATLAB-bicubic upscaling of the LR image, scored with
the standard protocol (Y PSNR, ``scale`` px border crop, the row's Y rounding). Torch-free.

``bicubic_baseline`` reads a dataset exactly as ``vacc-deploy eval`` does (same pairs, same LR
files or MATLAB-bicubic LR made from HR), so its numbers compare with the eval table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vacc_deploy.imaging.datasets import find_pairs
from vacc_deploy.imaging.metrics import psnr_y, ssim_y
from vacc_deploy.imaging.resize import imresize, round_half_away
from vacc_deploy.spec import ModelSpec


def bicubic_upscale(lr: np.ndarray, hr_hw: tuple[int, int]) -> np.ndarray:
    """MATLAB-bicubic upscaling of a uint8 image to ``hr_hw``, rounded to uint8 (the baseline); the
    image itself when it already has that size (scale-1 rows: the degraded input)."""
    if tuple(lr.shape[:2]) == tuple(hr_hw):
        return lr.copy()
    up = imresize(lr.astype(np.float64), output_shape=hr_hw)
    return round_half_away(np.clip(up, 0, 255)).astype(np.uint8)


def mean_psnr(outputs: list[np.ndarray], targets: list[np.ndarray], spec: ModelSpec) -> float:
    """Mean Y PSNR over image pairs, standard protocol (border crop = scale, the row's Y rounding)."""
    round_y = spec.y_conversion == "round"
    return float(np.mean([psnr_y(o, t, spec.scale, round_y) for o, t in zip(outputs, targets)]))


def bicubic_baseline(dataset: Path, spec: ModelSpec) -> dict[str, Any]:
    """Per-image and mean Y PSNR / SSIM of MATLAB-bicubic upscaling on a dataset (``find_pairs``
    layouts) at the row's scale. Raises DatasetError for an unusable dataset."""
    from vacc_deploy.evaluation.protocols import load_pair

    round_y = spec.y_conversion == "round"
    rows = []
    for pair in find_pairs(dataset, spec.scale):
        lr, hr = load_pair(pair, spec.scale)
        up = bicubic_upscale(lr, hr.shape[:2])
        rows.append({"image": pair.name, "psnr_y": psnr_y(up, hr, spec.scale, round_y),
                     "ssim_y": ssim_y(up, hr, spec.scale, round_y)})
    return {"dataset": str(dataset), "scale": spec.scale, "y_rounded": round_y, "images": rows,
            "psnr_y": float(np.mean([r["psnr_y"] for r in rows])),
            "ssim_y": float(np.mean([r["ssim_y"] for r in rows]))}
