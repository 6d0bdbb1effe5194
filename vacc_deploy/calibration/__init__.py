"""The calibration stage (streaming activation statistics), without torch: the calibration set
(:mod:`.dataset`) and its activation ranges (:mod:`.ranges`).

:func:`calibrate` runs a fixed-shape fp32 ONNX model on a :class:`CalibrationSource` one image at a
time and returns per-tensor ranges chosen by a method of :data:`METHODS`; the build stage
(:mod:`vacc_deploy.backends.ort.build`) turns them into int8 models. Memory does not grow with the number of images
(see :mod:`vacc_deploy.calibration.collect` and :mod:`vacc_deploy.calibration.stats`).

Cost: one pass over the source, one forward pass per image for every method (the model runs as a
chain of segments, see :mod:`~vacc_deploy.calibration.collect`), plus the statistics of each calibrated
tensor (a compiled loop; histograms widen as values arrive, see :mod:`~vacc_deploy.calibration.stats`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from vacc_deploy.errors import BuildError, UsageError
from vacc_deploy.progress import progress_bar
from vacc_deploy.calibration.collect import (
    DEFAULT_OP_TYPES,
    DEFAULT_SEGMENT_BYTES,
    INT8_OP_SETS,
    ArraySource,
    CallableSource,
    CalibrationSource,
    derived_tensors,
    infer_shapes,
    select_tensors,
    open_chain,
    stream_chain,
)
from vacc_deploy.calibration.histogram import warm_up_in_background
from vacc_deploy.calibration.methods import METHODS, MethodSettings
from vacc_deploy.calibration.sessions import release_freed_memory
from vacc_deploy.calibration.stats import TensorStats

__all__ = [
    "ArraySource", "CalibrationResult", "CalibrationSource", "CallableSource", "DEFAULT_OP_TYPES", "INT8_OP_SETS",
    "METHODS",
    "calibrate",
]


@dataclass
class CalibrationResult:
    """Ranges per calibrated tensor plus what produced them.

    ``ranges`` maps tensor name to (min, max) floats (graph order); ``stats`` holds each tensor's
    :meth:`TensorStats.summary`; ``segments``: ORT sessions in the chain each image ran through;
    ``seconds_per_image``: wall time of the pass over the images (sessions opened, statistics
    finished) per image; ``peak_rss_mb``: the process's peak resident memory during calibration
    (Linux; its high-water mark is reset first), None where unknown.
    """

    method: str
    params: dict[str, Any]
    num_images: int
    ranges: dict[str, tuple[float, float]]
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    segments: int = 1
    seconds_per_image: float | None = None
    peak_rss_mb: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form (ranges as [min, max] lists)."""
        return {
            "method": self.method,
            "params": dict(self.params),
            "num_images": self.num_images,
            "segments": self.segments,
            "seconds_per_image": self.seconds_per_image,
            "peak_rss_mb": self.peak_rss_mb,
            "ranges": {k: [float(lo), float(hi)] for k, (lo, hi) in self.ranges.items()},
            "stats": self.stats,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CalibrationResult":
        """Inverse of :meth:`to_dict`."""
        ranges = {k: (float(v[0]), float(v[1])) for k, v in data["ranges"].items()}
        return cls(data["method"], data.get("params", {}), int(data["num_images"]), ranges,
                   data.get("stats", {}), int(data.get("segments", 1)), data.get("seconds_per_image"),
                   data.get("peak_rss_mb"))


def _make_method(method: str, percentile: float, num_quantized_bins: int, ort_compat: bool = False) -> Any:
    if method not in METHODS:
        known = ", ".join(sorted(METHODS))
        raise UsageError(f"unknown calibration method {method!r}: expected one of {known}")
    try:
        settings = MethodSettings(percentile=percentile, num_quantized_bins=num_quantized_bins, ort_compat=ort_compat)
        return METHODS[method].configured(settings)
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


class _Overlapped:
    """Folds tensors into their statistics on one worker thread, so that a segment's statistics
    overlap ORT's run of the next segment (or image). :meth:`wait` (called before a segment's
    tensors are visited) lets at most one segment's tensors wait, and they are held until then
    whether or not the worker is done: peak memory is two segments, the same however fast the
    worker (so it does not depend on the machine's load or the number of images)."""

    def __init__(self, stats: dict[str, TensorStats]) -> None:
        self._stats = stats
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vacc-calib")
        self._pending: list[tuple[Future, Any]] = []

    def visit(self, name: str, arr: Any) -> None:
        self._pending.append((self._pool.submit(self._stats[name].update, arr), arr))

    def wait(self) -> None:
        pending, self._pending = self._pending, []
        for future, _ in pending:
            future.result()  # re-raises the worker's exception

    def __enter__(self) -> "_Overlapped":
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self.wait()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _reset_peak_rss() -> None:
    """Reset this process's RSS high-water mark (Linux ``clear_refs`` 5); no-op elsewhere."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_rss_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return None


def calibrate(
    model_path: str | Path,
    source: CalibrationSource,
    method: str = "percentile",
    *,
    percentile: float = 99.99,
    num_bins: int = 2048,
    num_quantized_bins: int = 128,
    op_types: Sequence[str] | None = DEFAULT_OP_TYPES,
    max_segment_bytes: int = DEFAULT_SEGMENT_BYTES,
    progress: bool = True,
    ort_compat: bool = False,
) -> CalibrationResult:
    """Compute activation ranges of ``model_path`` over ``source`` with ``method``.

    ``ort_compat`` reproduces ONNX Runtime's calibrators: ``kl_divergence`` follows its entropy
    calibrator exactly (see :class:`~vacc_deploy.calibration.methods.KLCalibration` for our default's one
    difference), and the sessions use the optimization level whose activations are bit-identical to
    ORT's (slower; by default they differ by about 1e-5 of each tensor's largest magnitude at most, see
    :mod:`~vacc_deploy.calibration.collect`).

    One forward pass per image (``max_segment_bytes``: the budget of one segment's fp32 tensors).
    Side effect: resets the process's peak-RSS mark (Linux) to measure calibration's own peak.
    Raises UsageError (unknown method, bad parameter, empty source, badly shaped image) or
    BuildError (model unreadable, ORT failure). Only the method's needs are computed.
    """
    calib = _make_method(method, percentile, num_quantized_bins, ort_compat)
    n = _check_source(source)
    if num_bins < 1 or max_segment_bytes < 1:
        raise UsageError("num_bins and max_segment_bytes must be positive")
    # numba's import and cache loads overlap the model load, the sessions and the first images
    warm_up_in_background(method == "kl_divergence" and not ort_compat)
    try:
        model = infer_shapes(onnx.load(str(model_path)))
    except Exception as exc:  # onnx.load raises OSError, DecodeError, ...
        raise BuildError(f"cannot read ONNX model {model_path}: {exc}") from exc
    names = select_tensors(model, op_types)
    derived = derived_tensors(model, names, calib.hist_kind)
    stats = {k: TensorStats(calib.hist_kind, num_bins) for k in names if k not in derived}
    _reset_peak_rss()
    t0 = time.perf_counter()
    chain = open_chain(model, list(stats), max_segment_bytes, exact=ort_compat)
    del model  # the sessions hold the weights; the full graph is not needed any more
    release_freed_memory()
    with progress_bar(total=n, desc=f"calibrate ({method})", unit="img", disable=not progress, leave=False) as bar, \
            _Overlapped(stats) as fold:
        seen = stream_chain(chain, list(stats), source, fold.visit, bar.update, fold.wait)
    segments = len(chain.segments)
    del chain
    if seen == 0:
        raise BuildError("calibration source yielded no image although its length is not zero")
    for k in names:  # graph order: a source comes before what derives from it
        if k in derived:
            stats[k] = stats[derived[k][0]].derived(derived[k][1])
    unique = {id(s): s for s in stats.values()}  # a permutation shares its input's object
    for s in unique.values():
        s.finish()
    by_id = {i: calib.compute_range(s) for i, s in unique.items()}
    ranges = {k: by_id[id(stats[k])] for k in names}
    per_image = (time.perf_counter() - t0) / seen
    params = {"percentile": percentile, "num_bins": num_bins,
              "num_quantized_bins": num_quantized_bins, "op_types": list(op_types or []),
              "ort_compat": ort_compat}
    return CalibrationResult(method, params, seen, ranges, {k: stats[k].summary() for k in names},
                             segments, per_image, _peak_rss_mb())
