"""Calibration methods: each turns one tensor's :class:`TensorStats` into a (min, max) range.

Semantics follow ONNX Runtime 1.31's calibrators (``onnxruntime/quantization/calibrate.py``) so the
ranges equal what ``quantize_static`` would compute from the same histograms, without its memory
cost (the one-pass histograms are within the bound stated in :mod:`~vacc_deploy.calibration.stats`):

* ``max``: the observed [min, max] (ORT ``MinMaxCalibrater``, ``symmetric=False``).
* ``percentile``: ORT ``PercentileCalibrater`` with its default ``symmetric=True``: a histogram of
  ``|x|``, threshold ``t`` = the bin edge where the CDF reaches ``percentile``; range ``[-t, t]``
  clipped to the observed [min, max]. For a uint8 activation this matters: a non-negative tensor
  (after Relu) gets [0, t]; a signed tensor gets a range symmetric around zero (the zero point lands
  near 128). ``symmetric=False`` cuts ``(100 - percentile) / 2`` percent on each side of the signed
  histogram instead. Note ORT's own default percentile is 99.999; ours is 99.99.
* ``kl_divergence``: ORT ``EntropyCalibrater`` (TensorRT-style search): over a signed histogram on
  ``[-T, T]``, for every window of ``2i+1`` bins centred on zero (``i`` from ``num_quantized_bins/2``
  to ``num_bins/2``) compare the clipped distribution ``p`` with its ``num_quantized_bins``-bin
  quantized version ``q``; the window with the least KL(p||q) gives the range, clipped to the
  observed [min, max]. ORT's quirks are kept on purpose (``q`` spread with integer truncation onto
  every bin of a chunk, tail bins of ``q`` left at zero, eps-smoothing) so thresholds match ORT's.
  ORT's default is ``num_bins=128`` (only one candidate window, i.e. no search); we default to 2048.

Adding a method: write a class with ``hist_kind``, ``compute_range`` and ``configured`` (the
:class:`Method` protocol) and add it to ``METHODS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from vacc_deploy.calibration.tvm_kl import CALIBRATE_PARAMS as TVM_KL_PARAMS, TVMKLCalibration
from vacc_deploy.calibration.stats import HistogramKind, TensorStats

Range = tuple[float, float]


@dataclass(frozen=True)
class MethodSettings:
    """What :func:`vacc_deploy.calibration.calibrate` was asked for; each method reads the fields it
    uses (``configured``) and ignores the others. ``percentile`` in % (percentile only);
    ``num_quantized_bins`` the KL searches' target bins; ``ort_compat`` ONNX Runtime's exact rules."""

    percentile: float = 99.99
    num_quantized_bins: int = 128
    ort_compat: bool = False


class Method(Protocol):
    """A calibration method: the histogram it needs (None: min/max only) and the range it derives."""

    hist_kind: ClassVar[HistogramKind | None]

    @classmethod
    def configured(cls, settings: MethodSettings) -> "Method":
        """An instance set up from ``settings`` (ValueError for settings out of range)."""
        ...

    def compute_range(self, stats: TensorStats) -> Range:
        """(lo, hi) of one tensor from its statistics over the calibration set."""
        ...


def _clip(lo: float, hi: float, stats: TensorStats) -> Range:
    """Clip a threshold pair to the observed extremes, as ORT does. When all the mass sits in the top
    bin (a constant tensor, e.g. a Constant node's output read by a Mul), the threshold is that bin's
    left edge, below the observed minimum, and the clipped pair would cross: the observed range then."""
    lo = max(float(lo), float(stats.min))
    hi = min(float(hi), float(stats.max))
    if lo > hi:
        return float(stats.min), float(stats.max)
    return lo, hi


class MaxCalibration:
    """Observed [min, max]; needs no histogram."""

    hist_kind: ClassVar[HistogramKind | None] = None

    @classmethod
    def configured(cls, settings: MethodSettings) -> "MaxCalibration":
        """No parameters."""
        return cls()

    def compute_range(self, stats: TensorStats) -> Range:
        """Return (min, max) seen over all images."""
        return float(stats.min), float(stats.max)


class PercentileCalibration:
    """Percentile of the (absolute, by default) value distribution; see module docstring."""

    hist_kind: ClassVar[HistogramKind | None] = "abs"

    @classmethod
    def configured(cls, settings: MethodSettings) -> "PercentileCalibration":
        """``settings.percentile``, symmetric."""
        return cls(percentile=settings.percentile)

    def __init__(self, percentile: float = 99.99, symmetric: bool = True) -> None:
        if not 0.0 <= percentile <= 100.0:
            raise ValueError(f"percentile must be in [0, 100], got {percentile}")
        self.percentile = percentile
        self.symmetric = symmetric
        if not symmetric:
            self.hist_kind = "signed"

    def compute_range(self, stats: TensorStats) -> Range:
        """Threshold(s) from the histogram's CDF, clipped to [min, max]."""
        hist, edges = stats.hist, stats.edges
        cdf = np.cumsum(hist / hist.sum())
        if self.symmetric:
            t = edges[np.searchsorted(cdf, self.percentile / 100.0)]
            return _clip(-t, t, stats)
        cut = (100.0 - self.percentile) / 200.0
        lo = edges[np.searchsorted(cdf, cut)]
        hi = edges[np.searchsorted(cdf, 1.0 - cut)]
        return _clip(lo, hi, stats)


def _smooth(p: np.ndarray, eps: float = 1e-4) -> np.ndarray | None:
    """Replace zeros by eps and take that mass off the non-zeros (float32), None if all zero."""
    zeros = p == 0
    n_zeros = int(zeros.sum())
    n_nonzeros = p.size - n_zeros
    if n_nonzeros == 0:
        return None
    eps1 = eps * float(n_zeros) / float(n_nonzeros)
    out = p.astype(np.float32)
    out += np.where(zeros, np.float32(eps), np.float32(-eps1)).astype(np.float32)
    return out


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) of two positive float32 vectors, each normalised to sum 1, in float32."""
    p = p / np.sum(p)
    q = q / np.sum(q)
    return float(np.sum(p * np.log(p / q)))


def _window_divergence(hist: np.ndarray, start: int, end: int, n_quant: int) -> float:
    """KL divergence of the window hist[start:end] against its n_quant-bin quantization."""
    sliced = hist[start:end]
    p = sliced.copy()
    p[0] += hist[:start].sum()
    p[-1] += hist[end:].sum()
    nonzero = (p != 0).astype(np.int64)
    merged = sliced.size // n_quant
    body = n_quant * merged
    quant = sliced[:body].reshape(n_quant, merged).sum(axis=1)
    quant[-1] += sliced[body:].sum()
    norm = nonzero[:body].reshape(n_quant, merged).sum(axis=1)
    per_bin = np.zeros(n_quant, dtype=np.int64)
    ok = norm != 0
    per_bin[ok] = (quant[ok] / norm[ok]).astype(np.int64)  # ORT stores into an int64 array
    q = np.zeros(p.size, dtype=np.int64)
    q[:body] = np.repeat(per_bin, merged)
    ps, qs = _smooth(p), _smooth(q)
    if ps is None or qs is None:
        return float("inf")
    return _kl(ps, qs)


class KLCalibration:
    """Entropy (KL-divergence) threshold search as ORT's entropy calibrator does it, except that by
    default the histogram bin holding zero is left out of the search (``ort_compat=False``).

    Why: uint8 activations have a zero point, so exact zeros are represented without error whatever
    the range. A tensor after Relu is often more than half zeros; that spike dominates ORT's KL
    search and drives the threshold far below where the real values lie (LESRCNN x2 on Set5: -9.1 dB
    with ORT's rule; see docs/accuracy.md). ``ort_compat=True`` reproduces ORT exactly.
    """

    hist_kind: ClassVar[HistogramKind | None] = "signed"

    @classmethod
    def configured(cls, settings: MethodSettings) -> "KLCalibration":
        """``settings.num_quantized_bins`` and ``settings.ort_compat``."""
        return cls(num_quantized_bins=settings.num_quantized_bins, ort_compat=settings.ort_compat)

    def __init__(self, num_quantized_bins: int = 128, ort_compat: bool = False) -> None:
        self.num_quantized_bins = num_quantized_bins
        self.ort_compat = ort_compat

    def compute_range(self, stats: TensorStats) -> Range:
        """The window edges of least divergence, clipped to [min, max]."""
        hist, edges = stats.hist, stats.edges
        if not self.ort_compat:
            hist = hist.copy()
            hist[hist.size // 2] = 0  # the bin [0, w): exact zeros cost nothing in uint8
        divs = self.divergences(hist)
        zero, half_q = hist.size // 2, self.num_quantized_bins // 2
        if divs.size == 0:
            return _clip(float(edges[0]), float(edges[-1]), stats)
        i = half_q + int(np.argmin(divs))  # argmin keeps the first minimum
        return _clip(edges[zero - i], edges[min(zero + i + 1, hist.size)], stats)

    def divergences(self, hist: np.ndarray) -> np.ndarray:
        """KL divergence of each candidate window ``i = num_quantized_bins/2 .. num_bins/2``.

        ``ort_compat``: ORT's float32 arithmetic, window by window in numpy (slow, bit-exact);
        otherwise one compiled loop in float64 (the same quantities; argmin differs only where two
        windows tie to float32 rounding).
        """
        zero, half_q = hist.size // 2, self.num_quantized_bins // 2
        if not self.ort_compat:
            from vacc_deploy.calibration._kernels import kl_divergences

            return kl_divergences(np.asarray(hist, np.int64), self.num_quantized_bins, 1e-4)
        return np.array([_window_divergence(hist, zero - i, min(zero + i + 1, hist.size), self.num_quantized_bins)
                         for i in range(half_q, zero + 1)])


def _quant_error(centers: np.ndarray, weights: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Expected squared error of uint8 affine quantization on ``[lo, hi]`` (broadcast arrays):
    clipping error outside the range, ``step**2 / 12`` rounding error inside."""
    step = (hi - lo) / 255.0
    below = np.clip(lo - centers, 0.0, None)
    above = np.clip(centers - hi, 0.0, None)
    inside = (centers >= lo) & (centers <= hi)
    return np.sum(weights * (below**2 + above**2 + inside * step**2 / 12.0), axis=-1)


class MSECalibration:
    """The range minimising the tensor's expected uint8 quantization error (clipping + rounding),
    found by a grid search of ``grid`` x ``grid`` candidates ``[min * a, max * b]``, a, b in (0, 1],
    over the signed histogram. Like vamc's ``mse`` mode; asymmetric, so it fits uint8 activations
    (a tensor after Relu keeps lo = 0)."""

    hist_kind: ClassVar[HistogramKind | None] = "signed"

    @classmethod
    def configured(cls, settings: MethodSettings) -> "MSECalibration":
        """The default grid (no setting applies)."""
        return cls()

    def __init__(self, grid: int = 48) -> None:
        self.grid = grid

    def compute_range(self, stats: TensorStats) -> Range:
        """The least-error (lo, hi) pair."""
        hist, edges = stats.hist.astype(np.float64), stats.edges.astype(np.float64)
        total = hist.sum()
        lo0, hi0 = min(float(stats.min), 0.0), max(float(stats.max), 0.0)
        if total == 0 or hi0 - lo0 <= 0:
            return float(stats.min), float(stats.max)
        keep = hist > 0
        centers = ((edges[:-1] + edges[1:]) / 2)[keep]
        weights = hist[keep] / total
        frac = np.linspace(1.0 / self.grid, 1.0, self.grid)
        los = (lo0 * frac)[:, None, None] if lo0 < 0 else np.zeros((1, 1, 1))
        his = (hi0 * frac)[None, :, None] if hi0 > 0 else np.zeros((1, 1, 1))
        err = _quant_error(centers[None, None, :], weights[None, None, :], los, his)
        i, j = np.unravel_index(int(np.argmin(err)), err.shape)
        return _clip(float(los[min(i, los.shape[0] - 1), 0, 0]), float(his[0, min(j, his.shape[1] - 1), 0]), stats)


METHODS: dict[str, type[Method]] = {
    "max": MaxCalibration,
    "percentile": PercentileCalibration,
    "kl_divergence": KLCalibration,
    "mse": MSECalibration,
    "kl_divergence_tvm": TVMKLCalibration,  # the vacc numerics' kl_divergence (TVM's rule)
}
#: calibrate() parameters a method needs besides its own defaults (histogram size).
METHOD_PARAMS: dict[str, dict[str, int]] = {"kl_divergence_tvm": TVM_KL_PARAMS}
