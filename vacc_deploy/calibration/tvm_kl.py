"""TVM's ``kl_divergence`` calibration threshold, for the ``vacc`` numerics profile. Torch-free.

Read at Apache TVM v0.13.0: ``python/tvm/relay/quantize/kl_divergence.py`` (``_find_scale_by_kl``:
``np.histogram`` of all calibration values of the tensor, ``num_bins=8001`` on ``[-T, T]`` with
``T = max(|min|, |max|)``, ``num_quantized_bins=255``) and ``src/relay/quantize/calibrate.cc``
(``MinimizeKL``, ported from MXNet). Unlike ONNX Runtime's entropy calibrator
(:class:`vacc_deploy.calibration.methods.KLCalibration`) it keeps the zero bin, takes the candidate's
threshold as the window's upper edge, leaves the window's first bin out of the quantized
distribution (``sliced_nd_hist[0]`` is never set) and spreads a chunk's count over the bins where
``p`` (not the chunk) is non-zero. Our histogram is the one-pass widening histogram of
:mod:`vacc_deploy.calibration.stats` with 8001 bins over the same range (within one fine bin of
``np.histogram``'s counts).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from vacc_deploy.calibration.stats import HistogramKind, TensorStats

if TYPE_CHECKING:
    from vacc_deploy.calibration.methods import MethodSettings

#: ``_find_scale_by_kl`` defaults; pass them to :func:`vacc_deploy.calibration.calibrate`.
CALIBRATE_PARAMS = {"num_bins": 8001, "num_quantized_bins": 255}
EPS = 1e-4


def _smooth(p: np.ndarray) -> np.ndarray | None:
    """``SmoothDistribution``: zeros get ``eps``, the non-zeros lose ``eps * zeros / nonzeros``
    (float32); None when all are zero or that loss reaches 1."""
    zeros = p == 0
    n_nonzero = p.size - int(zeros.sum())
    if n_nonzero == 0:
        return None
    eps1 = np.float32(EPS * float(zeros.sum()) / float(n_nonzero))
    if eps1 >= 1.0:
        return None
    return np.where(zeros, p + np.float32(EPS), p - eps1).astype(np.float32)


def window_divergence(hist: np.ndarray, i: int, num_quantized_bins: int) -> float:
    """``MinimizeKL``'s divergence of the window of half-width ``i`` around the zero bin."""
    zero = hist.size // 2
    start, stop = zero - i, zero + i + 1
    p = hist[start:stop].astype(np.float32)
    p[0] = hist[:start + 1].sum()
    p[-1] += hist[stop:].sum()
    sliced = hist[start:stop].astype(np.float32)
    sliced[0] = 0.0
    merged = sliced.size // num_quantized_bins
    body = (num_quantized_bins - 1) * merged  # chunks of ``merged`` bins; the last takes the rest
    totals = np.append(sliced[:body].reshape(-1, merged).sum(axis=1), sliced[body:].sum())
    counts = np.append(np.count_nonzero(sliced[:body].reshape(-1, merged), axis=1), np.count_nonzero(sliced[body:]))
    per_bin = np.divide(totals, counts, out=np.zeros_like(totals), where=counts > 0).astype(np.float32)
    spread = np.append(np.repeat(per_bin[:-1], merged), np.full(sliced.size - body, per_bin[-1], np.float32))
    q = np.where(p != 0, spread, np.float32(0.0)).astype(np.float32)
    ps, qs = _smooth(p), _smooth(q)
    if ps is None or qs is None:
        return float("inf")
    ps, qs = ps / ps.sum(), qs / qs.sum()
    return float(np.sum(ps * np.log(ps / qs)))


class TVMKLCalibration:
    """Symmetric range ``[-t, t]`` with ``t`` TVM's KL threshold (module docstring)."""

    hist_kind: ClassVar[HistogramKind | None] = "signed"

    @classmethod
    def configured(cls, settings: MethodSettings) -> "TVMKLCalibration":
        """``settings.num_quantized_bins`` (pass :data:`CALIBRATE_PARAMS`: TVM's is 255)."""
        return cls(num_quantized_bins=settings.num_quantized_bins)

    def __init__(self, num_quantized_bins: int = 255) -> None:
        self.num_quantized_bins = num_quantized_bins

    def compute_range(self, stats: TensorStats) -> tuple[float, float]:
        """(-t, t); the observed extremes when the histogram is too small for one window."""
        hist, edges = stats.hist, stats.edges
        zero, half_q = hist.size // 2, self.num_quantized_bins // 2
        if zero < half_q:
            return float(stats.min), float(stats.max)
        divs = [window_divergence(hist, i, self.num_quantized_bins) for i in range(half_q, zero + 1)]
        i = half_q + int(np.argmin(divs))
        t = float(edges[zero + i + 1])
        return -t, t
