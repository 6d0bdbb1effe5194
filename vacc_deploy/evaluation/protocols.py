"""Accuracy evaluation (SPEC section 3): the standard (papers') and vendor protocols, and fidelity
to the fp32 model's own output. Torch-free.

``evaluate`` runs every candidate (fp32 first: it is the fidelity reference) on every image, one
image at a time (memory does not grow with the dataset), and returns the SPEC section 6 JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vacc_deploy.errors import DatasetError, ImageError, ShapeError
from vacc_deploy.imaging.datasets import Pair
from vacc_deploy.imaging.io import read_image, to_uint
from vacc_deploy.imaging.metrics import fidelity, psnr_rgb, psnr_y, ssim_rgb, ssim_y
from vacc_deploy.imaging.resize import bicubic_downsample_uint8, crop_to_multiple
from vacc_deploy.evaluation.upscaler import Upscaler, conversion_for
from vacc_deploy.progress import progress_bar

VENDOR_INTERP = {"area": cv2.INTER_AREA, "bilinear": cv2.INTER_LINEAR}


@dataclass
class Candidate:
    """One model to score: its identity in the results and the upscaler that runs it.

    ``input_hw`` is the model's fixed input size (the vendor protocol resizes LR images to it);
    ``numerics`` whose int8 arithmetic an int8 model computes (``vacc_deploy.backends.ort.build.Numerics``).
    """

    precision: str
    quant: str | None
    backend: str
    upscaler: Upscaler
    input_hw: tuple[int, int]
    numerics: str | None = None

    @property
    def key(self) -> tuple[str, str | None, str, str | None]:
        """The candidate's identity in the per-image rows."""
        return self.precision, self.quant, self.backend, self.numerics

    @property
    def label(self) -> str:
        """``fp32``, ``int8 (onnxruntime)``, ``int8 (vacc, emulated)``, ..."""
        from vacc_deploy.backends.ort.options import precision_label

        return precision_label(self.precision, self.numerics)


def load_pair(pair: Pair, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """(LR, HR) as uint8 RGB. LR is read, or made from HR by MATLAB-compatible bicubic downsampling
    (HR cropped to a multiple of the scale first)."""
    hr = to_uint(read_image(pair.hr_path).rgb, 8, "round")
    hr = crop_to_multiple(hr, scale)
    if pair.lr_path is None:
        return bicubic_downsample_uint8(hr, scale), hr
    return to_uint(read_image(pair.lr_path).rgb, 8, "round"), hr


def _standard(cand: Candidate, lr: np.ndarray, hr: np.ndarray, scale: int, rounding: str):
    out = cand.upscaler(lr.astype(np.float32) / 255.0)
    spec = cand.upscaler.spec
    sr = to_uint(out, 8, conversion_for(spec, rounding))
    round_y = rounding == "official" and spec.y_conversion == "round"
    h, w = min(sr.shape[0], hr.shape[0]), min(sr.shape[1], hr.shape[1])
    sr, ref = sr[:h, :w], hr[:h, :w]
    return sr, psnr_y(sr, ref, scale, round_y), ssim_y(sr, ref, scale, round_y)


def _vendor(cand: Candidate, lr: np.ndarray, hr: np.ndarray, scale: int, interp: str):
    th, tw = cand.input_hw
    small = cv2.resize(lr, (tw, th), interpolation=VENDOR_INTERP[interp])
    big = cv2.resize(hr, (tw * scale, th * scale), interpolation=cv2.INTER_AREA)
    sr = to_uint(cand.upscaler(small.astype(np.float32) / 255.0), 8, "round")
    return sr, psnr_rgb(sr, big), ssim_rgb(sr, big)


def _score_image(pair: Pair, cands: list[Candidate], scale: int, protocol: str, rounding: str,
                 interp: str) -> list[dict[str, Any]]:
    lr, hr = load_pair(pair, scale)
    rows, ref = [], None
    for cand in cands:
        if protocol == "standard":
            sr, psnr, ssim = _standard(cand, lr, hr, scale, rounding)
        else:
            sr, psnr, ssim = _vendor(cand, lr, hr, scale, interp)
        ref = sr if ref is None else ref
        fid_psnr, fid_max = fidelity(sr, ref)
        rows.append({"image": pair.name, "precision": cand.precision, "quant": cand.quant,
                     "backend": cand.backend, "numerics": cand.numerics, "label": cand.label,
                     "psnr": psnr, "ssim": ssim,
                     "fidelity_psnr": fid_psnr, "fidelity_max_abs": fid_max})
    return rows


def _mse(psnr: float) -> float:
    """The MSE (uint8 levels squared) a PSNR in dB stands for (0 for inf)."""
    return 0.0 if math.isinf(psnr) else 255.0**2 / 10 ** (psnr / 10)


def _pooled_psnr(psnrs: list[float]) -> float:
    """PSNR of the mean MSE over images (inf only when every image is identical)."""
    mse = float(np.mean([_mse(p) for p in psnrs]))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def summarize(per_image: list[dict[str, Any]], cands: list[Candidate]) -> list[dict[str, Any]]:
    """Mean PSNR/SSIM per candidate, deltas to the first (fp32) candidate, pooled fidelity PSNR."""
    results = []
    for cand in cands:
        mine = [r for r in per_image if (r["precision"], r["quant"], r["backend"], r.get("numerics")) == cand.key]
        results.append({"precision": cand.precision, "quant": cand.quant, "backend": cand.backend,
                        "numerics": cand.numerics, "label": cand.label,
                        "psnr": float(np.mean([r["psnr"] for r in mine])),
                        "ssim": float(np.mean([r["ssim"] for r in mine])),
                        "fidelity_psnr": _pooled_psnr([r["fidelity_psnr"] for r in mine]),
                        "fidelity_max_abs": max(r["fidelity_max_abs"] for r in mine)})
    for r in results:
        r["delta_psnr"] = r["psnr"] - results[0]["psnr"]
        r["delta_ssim"] = r["ssim"] - results[0]["ssim"]
    return results


def evaluate(pairs: list[Pair], cands: list[Candidate], *, row: str, dataset: Path, scale: int,
             protocol: str = "standard", rounding: str = "official", vendor_interp: str = "area",
             progress: bool = True) -> dict[str, Any]:
    """Score every candidate on every pair; returns the SPEC section 6 result mapping.

    ``rounding``: ``official`` uses each row's own official float→uint8 conversion and Y
    computation (:class:`ModelSpec` ``output_conversion``, ``y_conversion``); ``round`` rounds the
    output and scores float Y (the common BasicSR convention).

    An image that cannot be read or scored (corrupt, too large to decode, too small for the
    metric) is left out and listed under ``failed`` (image, one-line error naming the file); the
    means are over the others. Raises DatasetError when no image can be scored.
    """
    per_image: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    for pair in progress_bar(pairs, desc=f"eval {row}", unit="img", disable=not progress):
        try:
            per_image += _score_image(pair, cands, scale, protocol, rounding, vendor_interp)
        except (ImageError, ShapeError) as exc:  # one bad image: note it, go on with the others
            where = str(pair.hr_path)
            failed.append({"image": pair.name, "error": str(exc) if where in str(exc) else f"{where}: {exc}"})
    if not per_image:
        raise DatasetError(f"{dataset}: none of the {len(pairs)} images could be evaluated "
                           f"(first: {failed[0]['error'] if failed else 'no images'})")
    return {"row": row, "dataset": str(dataset), "protocol": protocol, "n_images": len(pairs) - len(failed),
            "rounding": rounding, "results": summarize(per_image, cands), "per_image": per_image, "failed": failed}


def drop_at_psnr(fp32_psnr: dict[str, float], int8_psnr: dict[str, float], reference_psnr: float) -> float:
    """The PSNR drop (dB, negative = worse) an int8 model would show on images where fp32 reaches
    ``reference_psnr``, predicted from per-image PSNRs (dB, keyed by image) of fp32 and int8 on
    other images: the int8 noise is the mean increase of the MSE over the images both scored, and
    the drop is ``-10 log10(1 + noise / MSE(reference_psnr))``. The int8 error is nearly the same
    power on any image (fidelity to fp32 moves by about 1 dB between RealSRSet and Set5, lesrcnn_x2),
    while the fp32 error it adds to is not, which is why a drop measured on one set does not
    transfer to another and this does (docs/accuracy.md). A negative noise (int8 scored better)
    predicts a gain."""
    common = sorted(set(fp32_psnr) & set(int8_psnr))
    if not common:
        raise ValueError("no image scored by both models")
    noise = float(np.mean([_mse(int8_psnr[k]) - _mse(fp32_psnr[k]) for k in common]))
    ratio = max(noise / _mse(reference_psnr), -0.999999)
    return -10 * math.log10(1 + ratio)
