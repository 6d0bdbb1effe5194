"""Streaming per-tensor activation statistics, updated one image at a time.

Two passes over the calibration data:

* pass 1 (:class:`TensorStats.update_range`): running min / max (and min / max of ``|x|`` when an
  absolute histogram is wanted), NaNs ignored;
* pass 2 (:class:`TensorStats.update_histogram`): a histogram over a range fixed by pass 1.

The histograms reproduce exactly what ONNX Runtime's ``HistogramCollector`` builds when it is given
all activations at once (which is what ORT's calibrators do after keeping every activation of every
image in memory):

* ``signed`` (ORT ``collect_value``, used by the entropy calibrator and by the percentile calibrator
  when ``symmetric=False``): ``num_bins`` bins over ``[-T, T]`` with ``T = max(|min|, |max|)``;
* ``abs`` (ORT ``collect_absolute_value``, the percentile calibrator's default ``symmetric=True``):
  ``num_bins`` bins of ``|x|`` over ``[min|x|, max|x|]``.

``np.histogram`` assigns each element to a bin independently of the others, so summing per-image
histograms over the same edges equals the histogram of the concatenation. Memory per tensor is
``num_bins`` counters, whatever the number of images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

HistogramKind = Literal["signed", "abs"]


@dataclass
class TensorStats:
    """Statistics of one tensor over all calibration images (see module docstring)."""

    track_abs: bool = False
    count: int = 0
    min: np.float32 | None = None
    max: np.float32 | None = None
    abs_min: np.float32 | None = None
    abs_max: np.float32 | None = None
    hist_kind: HistogramKind | None = None
    hist: np.ndarray | None = None
    edges: np.ndarray | None = None
    _range: tuple[np.float32, np.float32] | None = field(default=None, repr=False)

    def update_range(self, arr: np.ndarray) -> None:
        """Pass 1: fold ``arr`` (any shape, float) into the running min/max."""
        flat = np.asarray(arr, dtype=np.float32).ravel()
        self.count += flat.size
        if flat.size == 0:
            return
        lo, hi = np.float32(np.nanmin(flat)), np.float32(np.nanmax(flat))
        self.min = lo if self.min is None else min(self.min, lo)
        self.max = hi if self.max is None else max(self.max, hi)
        if self.track_abs:
            mags = np.abs(flat)
            alo, ahi = np.float32(np.nanmin(mags)), np.float32(np.nanmax(mags))
            self.abs_min = alo if self.abs_min is None else min(self.abs_min, alo)
            self.abs_max = ahi if self.abs_max is None else max(self.abs_max, ahi)

    def start_histogram(self, kind: HistogramKind, num_bins: int) -> None:
        """Fix the histogram's range from pass 1's extremes; call before :meth:`update_histogram`."""
        if self.min is None:
            self.min = self.max = self.abs_min = self.abs_max = np.float32(0)
        if kind == "signed":
            t = np.float32(max(abs(self.min), abs(self.max)))
            self._range = (-t, t)
        else:
            if self.abs_min is None or self.abs_max is None:
                raise ValueError("an abs histogram needs TensorStats(track_abs=True) in pass 1")
            self._range = (self.abs_min, self.abs_max)
        self.hist_kind = kind
        self.hist = np.zeros(num_bins, dtype=np.int64)
        self.edges = None

    def update_histogram(self, arr: np.ndarray) -> None:
        """Pass 2: add ``arr``'s values (or magnitudes) to the fixed-range histogram."""
        if self.hist is None or self._range is None:
            raise ValueError("start_histogram() must be called before update_histogram()")
        flat = np.asarray(arr, dtype=np.float32).ravel()
        if self.hist_kind == "abs":
            flat = np.abs(flat)
        counts, edges = np.histogram(flat, bins=self.hist.size, range=self._range)
        self.hist += counts
        if self.edges is None:
            self.edges = edges.astype(np.float32)

    def finish_histogram(self) -> None:
        """Fill the edges when pass 2 saw no data (empty source guarded elsewhere)."""
        if self.edges is None and self.hist is not None and self._range is not None:
            _, edges = np.histogram(np.zeros(0, np.float32), bins=self.hist.size, range=self._range)
            self.edges = edges.astype(np.float32)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary (no histogram counts)."""
        out: dict[str, Any] = {
            "count": int(self.count),
            "min": None if self.min is None else float(self.min),
            "max": None if self.max is None else float(self.max),
        }
        if self.hist_kind is not None and self.edges is not None:
            out["histogram"] = {
                "kind": self.hist_kind,
                "num_bins": int(self.hist.size),
                "range": [float(self.edges[0]), float(self.edges[-1])],
            }
        return out
