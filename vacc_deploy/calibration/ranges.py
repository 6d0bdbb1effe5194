"""The calibration stage's result: the activation ranges of an fp32 ONNX model over a calibration
set with one method, cached on disk under ``<workdir>/<row>/ranges/`` (keyed by the model, the
set and the method with its parameters), so that builds differing only in per-channel weights or
float layers share them. Torch-free."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vacc_deploy import artifacts
from vacc_deploy.artifacts.guard import stage_lock
from vacc_deploy.calibration.dataset import CalibSet, CalibSource
from vacc_deploy.errors import UsageError
from vacc_deploy.spec import ModelSpec
from vacc_deploy.types import CALIB_METHODS

log = logging.getLogger(__name__)

RANGES_FORMAT = 4  # bump when a calibration method's rule changes (3: constant tensors; 4: one pass)


@dataclass(frozen=True)
class Ranges:
    """Activation ranges of one model over one calibration set with one method.

    ``ranges``: tensor name -> (min, max) floats, graph order. ``info``: method, parameters, images,
    the set's sha256 and folder, seconds (total and per image), segments (ORT sessions each image
    ran through), the calibration's peak RSS in MB, unreadable images skipped by the set.
    ``cached``: read from an earlier run.
    """

    method: str
    ranges: dict[str, tuple[float, float]]
    info: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    cached: bool = False

    @property
    def calib_sha256(self) -> str:
        """The calibration set the ranges come from."""
        return str(self.info["calib_sha256"])


def _read(path: Path, method: str) -> Ranges | None:
    """The cached ranges at ``path``; None when there are none or they are unreadable (warned)."""
    from vacc_deploy.calibration import CalibrationResult

    if not path.is_file():
        return None
    try:
        data = artifacts.read_json(path)
        return Ranges(method, CalibrationResult.from_dict(data["result"]).ranges, data["info"], path, cached=True)
    except (ValueError, KeyError, TypeError):
        log.warning("cached calibration ranges %s are unreadable; recomputing them", path)
        return None


def calibration_ranges(model_path: Path, calib: CalibSet, spec: ModelSpec, method: str, percentile: float,
                       row_dir: Path) -> Ranges:
    """Activation ranges of ``model_path`` over ``calib`` with ``method`` (cached on disk; one pass
    over the set, see :func:`vacc_deploy.calibration.calibrate`). Calibration holds the stage lock
    of the ranges file (``.<file>.lock`` beside it), so concurrent identical requests calibrate once.

    Raises UsageError (option ``quant``) for an unknown method, and what ``calibrate`` raises.
    """
    from vacc_deploy.calibration.methods import METHOD_PARAMS, METHODS

    if method not in METHODS:
        raise UsageError(f"{method}: unknown method (known: {', '.join(CALIB_METHODS)})",
                         option="quant")
    params = {"percentile": percentile} if method == "percentile" else dict(METHOD_PARAMS.get(method, {}))
    key = artifacts.stage_key({"format": RANGES_FORMAT, "model": artifacts.file_digest(model_path),
                               "calib": calib.sha256, "method": method, **params})
    path = row_dir / "ranges" / f"{method}-{key}.json"
    cached = _read(path, method)
    if cached is not None:
        return cached
    with stage_lock(path):  # a second process asking for the same ranges waits, then reads them
        return _read(path, method) or _calibrated(path, model_path, calib, spec, method, params)


def _calibrated(path: Path, model_path: Path, calib: CalibSet, spec: ModelSpec, method: str,
                params: dict[str, Any]) -> Ranges:
    from vacc_deploy.calibration import calibrate

    t0 = time.perf_counter()
    result = calibrate(model_path, CalibSource(calib, spec), method, **params)
    info = {"method": method, "params": params, "images": calib.num, "calib_sha256": calib.sha256,
            "calib_folder": str(calib.folder), "seconds": time.perf_counter() - t0,
            "seconds_per_image": result.seconds_per_image, "segments": result.segments,
            "peak_rss_mb": result.peak_rss_mb, "n_skipped_images": calib.manifest.get("n_skipped", 0)}
    artifacts.atomic_write_json(path, {"info": info, "result": result.to_dict()})
    return Ranges(method, result.ranges, info, path)
