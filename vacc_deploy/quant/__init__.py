"""Calibration (streaming activation statistics) and int8 / fp16 conversion, without torch.

:func:`calibrate` runs a fixed-shape fp32 ONNX model on a :class:`CalibrationSource` one image at a
time and returns per-tensor ranges chosen by a method of :data:`METHODS`; :func:`quantize_int8`
hands those ranges to ONNX Runtime's QDQ quantizer. Memory does not grow with the number of images
(see :mod:`vacc_deploy.quant.collect` and :mod:`vacc_deploy.quant.stats`).

Cost: ``max`` takes one pass over the source per tensor group; histogram methods take two (pass 1
fixes each histogram's range, pass 2 fills it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from vacc_deploy.errors import BuildError, UsageError
from vacc_deploy.progress import progress_bar
from vacc_deploy.quant.collect import (
    DEFAULT_MAX_BYTES_PER_RUN,
    DEFAULT_OP_TYPES,
    INT8_OP_SETS,
    ArraySource,
    CallableSource,
    CalibrationSource,
    infer_shapes,
    plan_groups,
    select_tensors,
    stream_group,
    tensor_nbytes,
)
from vacc_deploy.quant.methods import METHODS
from vacc_deploy.quant.qdq import convert_fp16, quantize_int8
from vacc_deploy.quant.stats import TensorStats

__all__ = [
    "ArraySource", "CalibrationResult", "CalibrationSource", "CallableSource", "DEFAULT_OP_TYPES", "INT8_OP_SETS",
    "METHODS",
    "calibrate", "convert_fp16", "quantize_int8",
]


@dataclass
class CalibrationResult:
    """Ranges per calibrated tensor plus what produced them.

    ``ranges`` maps tensor name to (min, max) floats (graph order); ``stats`` holds each tensor's
    :meth:`TensorStats.summary`; ``groups`` is how many ORT runs per image the memory budget needed.
    """

    method: str
    params: dict[str, Any]
    num_images: int
    ranges: dict[str, tuple[float, float]]
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: int = 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form (ranges as [min, max] lists)."""
        return {
            "method": self.method,
            "params": dict(self.params),
            "num_images": self.num_images,
            "groups": self.groups,
            "ranges": {k: [float(lo), float(hi)] for k, (lo, hi) in self.ranges.items()},
            "stats": self.stats,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CalibrationResult":
        """Inverse of :meth:`to_dict`."""
        ranges = {k: (float(v[0]), float(v[1])) for k, v in data["ranges"].items()}
        return cls(data["method"], data.get("params", {}), int(data["num_images"]), ranges,
                   data.get("stats", {}), int(data.get("groups", 1)))


def _make_method(method: str, percentile: float, num_quantized_bins: int, ort_compat: bool = False) -> Any:
    if method not in METHODS:
        known = ", ".join(sorted(METHODS))
        raise UsageError(f"unknown calibration method {method!r}: expected one of {known}")
    try:
        return METHODS[method](percentile=percentile, num_quantized_bins=num_quantized_bins, ort_compat=ort_compat)
    except ValueError as exc:
        raise UsageError(f"calibration method {method!r}: {exc}") from exc


def _check_source(source: CalibrationSource) -> int:
    try:
        n = len(source)
    except TypeError as exc:
        raise UsageError("calibration source must have a length (implement __len__)") from exc
    if n == 0:
        raise UsageError("calibration source is empty: at least one calibration image is needed")
    return n


def _calibrate_group(model, names, source, calib, num_bins, bar) -> dict[str, TensorStats]:
    """Statistics for one tensor group: pass 1 (range), pass 2 (histogram) when needed."""
    kind = calib.hist_kind
    stats = {n: TensorStats(track_abs=(kind == "abs")) for n in names}
    seen = stream_group(model, names, source, lambda n, a: stats[n].update_range(a), bar.update)
    if seen == 0:
        raise BuildError("calibration source yielded no image although its length is not zero")
    if kind is not None:
        for s in stats.values():
            s.start_histogram(kind, num_bins)
        stream_group(model, names, source, lambda n, a: stats[n].update_histogram(a), bar.update)
        for s in stats.values():
            s.finish_histogram()
    return stats


def calibrate(
    model_path: str | Path,
    source: CalibrationSource,
    method: str = "percentile",
    *,
    percentile: float = 99.99,
    num_bins: int = 2048,
    num_quantized_bins: int = 128,
    op_types: Sequence[str] | None = DEFAULT_OP_TYPES,
    max_bytes_per_run: int = DEFAULT_MAX_BYTES_PER_RUN,
    progress: bool = True,
    ort_compat: bool = False,
) -> CalibrationResult:
    """Compute activation ranges of ``model_path`` over ``source`` with ``method``.

    ``ort_compat`` makes ``kl_divergence`` follow ONNX Runtime's entropy calibrator exactly (see
    :class:`~vacc_deploy.quant.methods.KLCalibration` for our default's one difference).

    Raises UsageError (unknown method, bad parameter, empty source, badly shaped image) or
    BuildError (model unreadable, ORT failure). Only the method's needs are computed.
    """
    calib = _make_method(method, percentile, num_quantized_bins, ort_compat)
    n = _check_source(source)
    if num_bins < 1 or max_bytes_per_run < 1:
        raise UsageError("num_bins and max_bytes_per_run must be positive")
    try:
        model = infer_shapes(onnx.load(str(model_path)))
    except Exception as exc:  # onnx.load raises OSError, DecodeError, ...
        raise BuildError(f"cannot read ONNX model {model_path}: {exc}") from exc
    names = select_tensors(model, op_types)
    groups = plan_groups({k: tensor_nbytes(model, k) for k in names}, max_bytes_per_run)
    passes = 1 if calib.hist_kind is None else 2
    all_stats: dict[str, TensorStats] = {}
    with progress_bar(total=n * passes * len(groups), desc=f"calibrate ({method})", unit="img",
              disable=not progress, leave=False) as bar:
        for group in groups:
            all_stats.update(_calibrate_group(model, group, source, calib, num_bins, bar))
    ranges = {k: calib.compute_range(all_stats[k]) for k in names}
    params = {"percentile": percentile, "num_bins": num_bins,
              "num_quantized_bins": num_quantized_bins, "op_types": list(op_types or []),
              "ort_compat": ort_compat}
    return CalibrationResult(method, params, n, ranges,
                             {k: all_stats[k].summary() for k in names}, len(groups))
