"""Streaming per-tensor activation statistics, one pass over the calibration images.

:meth:`TensorStats.update` folds one image's activation into the running min / max and, when a
histogram is wanted, into a :class:`~vacc_deploy.calibration.histogram.WideningHistogram` of
``16 * num_bins`` bins that widens its range as new values arrive (no range pass first).
:meth:`TensorStats.finish` then gives the histogram ONNX Runtime's ``HistogramCollector`` builds
when it holds every activation at once, over the same range:

* ``signed`` (ORT ``collect_value``; the entropy calibrator, and the percentile calibrator when
  ``symmetric=False``): ``num_bins`` bins over ``[-T, T]`` with ``T = max(|min|, |max|)``;
* ``abs`` (ORT ``collect_absolute_value``; the percentile calibrator's default ``symmetric=True``):
  ``num_bins`` bins of ``|x|`` over ``[min|x|, max|x|]``.

How far this is from two passes (range, then a fixed-range histogram, as before RANGES_FORMAT 4):
min / max are exact, so ``max`` is bit-identical; the edges are identical; the cumulative count at
each edge is exact or off by less than the count of the one fine bin (at most 1/8 of a final bin)
straddling it. A percentile threshold therefore moves by at most one final bin (``T / 1024`` at
2048 bins) and only when the percentile falls inside that uncertainty; the KL / MSE searches see
the same near-identical histogram. tests/calibration/test_stats.py checks these bounds.

Against ONNX Runtime's own calibrators (optimizations off) the activations themselves differ by
default: the sessions run at ORT_ENABLE_ALL, whose values are within about 1e-5 of each tensor's
largest magnitude of ORT's (measured: 5.2e-6 at most; :mod:`vacc_deploy.calibration.collect`;
``ort_compat=True`` makes them identical). ``max`` moves by at most that; a cumulative count can
also differ by the values lying within that distance of an edge (about 1/100 of a final bin), so
the one-final-bin bound above still holds (tests/calibration/test_vs_ort.py).

Derived tensors (:meth:`TensorStats.derived`): the output of a permutation (DepthToSpace, Reshape,
...) has its input's statistics, and a Relu's output (signed histograms) follows exactly from its
input's fine histogram, so neither is scanned. A derived Relu keeps its input's fine bins: they
are ``(max - min) / (16 * max)`` of its own final bins wide (at most 1/8 when ``min >= -max``), and
the bound above holds with that width.

NaN and +-inf are ignored. Memory per tensor: ``16 * num_bins`` int64 counters (256 KB at 2048).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from vacc_deploy.calibration.histogram import WideningHistogram, kernels

HistogramKind = Literal["signed", "abs"]

#: fine bins per final histogram bin
FINE_FACTOR = 16

#: ops whose output holds exactly the values of their (first) input, rearranged
PERMUTATIONS = frozenset({"DepthToSpace", "SpaceToDepth", "Reshape", "Transpose", "Flatten", "Squeeze",
                          "Unsqueeze", "Identity"})


def derivable(op: str, kind: HistogramKind | None) -> bool:
    """Whether :meth:`TensorStats.derived` can give the statistics of ``op``'s output."""
    return op in PERMUTATIONS or (op == "Relu" and kind != "abs")


def _finite_extremes(flat: np.ndarray) -> tuple[float, float, float, bool] | None:
    """(min, max, min |x|) of the finite values of ``flat`` and whether every value is finite; None
    when no value is finite (-0.0 is returned as 0.0)."""
    from vacc_deploy.calibration._numpy_kernels import KEY_NEG_INF, KEY_POS_INF, key_value

    least, largest, low_mag = (int(k) for k in kernels().extremes(flat))
    if KEY_NEG_INF < least and largest < KEY_POS_INF:
        return key_value(least), key_value(largest), key_value(low_mag), True
    finite = flat[np.isfinite(flat)]
    if not finite.size:
        return None
    return float(finite.min()), float(finite.max()), float(np.abs(finite).min()), False


@dataclass
class TensorStats:
    """Statistics of one tensor over all calibration images (see module docstring).

    ``min`` / ``max`` are float32 scalars (None before any finite value); after :meth:`finish`,
    ``hist`` (int64, ``num_bins``) and ``edges`` (float32, ``num_bins + 1``) hold the histogram.
    """

    hist_kind: HistogramKind | None = None
    num_bins: int = 2048
    count: int = 0
    min: np.float32 | None = None
    max: np.float32 | None = None
    hist: np.ndarray | None = None
    edges: np.ndarray | None = None
    _fine: WideningHistogram | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.hist_kind is not None:
            self._fine = WideningHistogram(FINE_FACTOR * self.num_bins, absolute=self.hist_kind == "abs")

    @property
    def abs_min(self) -> np.float32 | None:
        """Least ``|x|`` seen (exact for an ``abs`` histogram, else 0 when the values straddle zero)."""
        if self.min is None or self.max is None:
            return None
        if self.hist_kind == "abs" and self._fine is not None and math.isfinite(self._fine.least):
            return np.float32(self._fine.least)
        return np.float32(0) if self.min <= 0 <= self.max else np.float32(min(abs(self.min), abs(self.max)))

    @property
    def abs_max(self) -> np.float32 | None:
        """Largest ``|x|`` seen."""
        return None if self.min is None else np.float32(max(abs(self.min), abs(self.max)))

    def update(self, arr: np.ndarray) -> None:
        """Fold ``arr`` (any shape, float) into the statistics; ``arr`` is not kept."""
        flat = np.asarray(arr, dtype=np.float32).ravel()
        self.count += flat.size
        if flat.size == 0:
            return
        ext = _finite_extremes(flat)
        if ext is None:
            return
        least, largest, low_mag, finite = ext
        lo, hi = np.float32(least), np.float32(largest)
        if self._fine is not None and self.hist_kind == "abs":
            straddles = least <= 0 <= largest  # the window's lower bound is then 0, as before
            top = max(abs(least), abs(largest))
            self._fine.add(flat, 0.0 if straddles else low_mag, top, low_mag, finite)
        elif self._fine is not None:
            self._fine.add(flat, least, largest, least, finite)
        self.min = lo if self.min is None else min(self.min, lo)
        self.max = hi if self.max is None else max(self.max, hi)

    def derived(self, op: str) -> "TensorStats":
        """Statistics of ``op(x)`` from those of ``x`` (this object), without seeing ``op(x)``:
        an op of :data:`PERMUTATIONS` moves values without changing them (the same object is
        returned); ``Relu`` maps negatives to 0 (signed or no histogram: negative bins move into
        the bin holding 0, exact on the same grid). ValueError for anything else."""
        if op in PERMUTATIONS:
            return self
        if op != "Relu" or self.hist_kind == "abs":
            raise ValueError(f"cannot derive the statistics of {op} from its input's ({self.hist_kind})")
        out = TensorStats(self.hist_kind, self.num_bins, self.count)
        if self.min is not None:
            out.min, out.max = max(self.min, np.float32(0)), max(self.max, np.float32(0))
        if self._fine is not None:
            out._fine = self._fine.relu()
        return out

    def finish(self) -> None:
        """Fill ``hist`` / ``edges`` over ORT's range for this kind (a no-op without histogram)."""
        if self.hist_kind is None or self._fine is None:
            return
        if self.min is None:
            self.min = self.max = np.float32(0)
        if self.hist_kind == "signed":
            t = np.float32(max(abs(self.min), abs(self.max)))
            rng = (-t, t)
        else:
            rng = (self.abs_min, self.abs_max)
        # np.histogram's own edges (float32 linspace; an empty range widened by 0.5 each side)
        _, edges = np.histogram(np.zeros(0, np.float32), bins=self.num_bins, range=rng)
        self.edges = edges.astype(np.float32)
        self.hist = self._fine.rebin(self.edges)

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
