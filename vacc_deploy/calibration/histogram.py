"""A histogram that widens its range as values arrive, for one-pass calibration.

Grid: bin ``k`` holds ``[k * w, (k + 1) * w)`` with ``w = 2**e``, anchored at zero; at most
``bins`` consecutive bins are kept, from ``k0``. When new values fall outside the kept window, the
window moves and, if the values no longer fit in ``bins`` bins, ``e`` grows: bins ``2m`` and
``2m + 1`` merge into bin ``m`` of the wider grid, exactly (they nest). ``e`` is the smallest that
holds every value seen so far, so the kept bins are at most about ``2 * span / bins`` wide.

:meth:`WideningHistogram.rebin` then turns the counts into a histogram over any edges covering the
data (ONNX Runtime's ``[-T, T]`` or ``[min|x|, max|x|]``, fixed only once every image was seen):
the cumulative count at an edge is exact where the edge is a grid edge or falls in an empty grid
bin, and otherwise interpolated linearly inside the one grid bin that straddles it (off by less
than that bin's count). With ``bins = 16 * num_bins`` a grid bin is at most 1/8 of a final bin.

Counting runs in a compiled loop (numba; its numpy twin while numba loads, see :func:`kernels`);
NaN and +-inf are not counted. An array the caller knows to be finite takes the faster loop
(:func:`~vacc_deploy.calibration._kernels.count_finite`).
"""

from __future__ import annotations

import logging
import math
import threading
from types import ModuleType

import numpy as np

log = logging.getLogger(__name__)

#: the compiled loops' load: "loading" while :func:`warm_up` runs, "ready" once it is done
_LOAD: dict[str, bool] = {"loading": False, "ready": False}
_LOAD_LOCK = threading.Lock()


def kernels() -> ModuleType:
    """The counting loops to use now: the compiled ones (:mod:`._kernels`, imported here if need
    be), or their numpy twins (:mod:`._numpy_kernels`, same results) while :func:`warm_up` is still
    loading the compiled ones on another thread, so that statistics need not wait for numba."""
    with _LOAD_LOCK:
        numpy_now = _LOAD["loading"] and not _LOAD["ready"]
    if numpy_now:
        from vacc_deploy.calibration import _numpy_kernels

        return _numpy_kernels
    from vacc_deploy.calibration import _kernels

    return _kernels


def _count(flat: np.ndarray, counts: np.ndarray, absolute: bool, inv_w: float, k0: float, finite: bool) -> None:
    """Add ``flat``'s grid bins to ``counts`` with ``count`` of :func:`kernels` (``count_finite``
    when ``finite``). One thread: calibration folds statistics on a worker while ORT's threads run
    the next segment, so splitting an array across cores would only compete with them (measured
    slower in wall time on the 2 shared cores)."""
    k = kernels()
    (k.count_finite if finite else k.count)(flat, absolute, inv_w, k0, counts)


def warm_up_in_background(kl: bool = False) -> threading.Thread:
    """Start :func:`warm_up` on a daemon thread, having marked the load as under way (so that
    :func:`kernels` hands out the numpy loops from now until it is done); a failure is logged and
    left to the first real call to raise."""
    with _LOAD_LOCK:
        _LOAD["loading"] = not _LOAD["ready"]
    thread = threading.Thread(target=_warm_up_quietly, args=(kl,), daemon=True, name="vacc-warm-up")
    thread.start()
    return thread


def _warm_up_quietly(kl: bool) -> None:
    try:
        warm_up(kl)
    except Exception as exc:  # e.g. numba missing: the statistics raise it where it matters
        log.debug("kernel warm-up failed: %s", exc)


def warm_up(kl: bool = False) -> None:
    """Import the compiled loops and load each one used for extremes and counting (and the KL search when ``kl``)
    from numba's disk cache: about 3 s of CPU on the 2-core development box (numba's import and
    first call), done on a thread while the model loads and its sessions open (see
    :func:`warm_up_in_background`)."""
    try:
        from vacc_deploy.calibration import _kernels

        tiny = np.zeros(1, np.float32)
        _kernels.extremes(tiny)
        _kernels.count_finite(tiny, False, 1.0, 0.0, np.zeros(2, np.int64))
        _kernels.count(tiny, False, 1.0, 0.0, np.zeros(2, np.int64))
        if kl:
            _kernels.kl_divergences(np.ones(4, np.int64), 2, 1e-4)
        with _LOAD_LOCK:
            _LOAD["ready"] = True
    finally:
        with _LOAD_LOCK:
            _LOAD["loading"] = False


def _fits(lo: float, hi: float, e: int, bins: int) -> bool:
    return math.floor(math.ldexp(hi, -e)) - math.floor(math.ldexp(lo, -e)) < bins


class WideningHistogram:
    """Counts of values (or magnitudes) on a power-of-two grid that widens as needed (see module)."""

    def __init__(self, bins: int, absolute: bool = False) -> None:
        if bins < 2:
            raise ValueError("a widening histogram needs at least 2 bins")
        self.bins = bins
        self.absolute = absolute
        self.counts = np.zeros(bins, np.int64)
        self.e: int | None = None
        self.k0 = 0
        self.lo = math.inf  # bounds the window must cover (the callers' extremes)
        self.hi = -math.inf
        self.least = math.inf  # least value counted (min |x| for ``absolute``)

    def _first_exponent(self, lo: float, hi: float) -> int:
        span = hi - lo
        big = max(abs(lo), abs(hi))
        # grid indices stay below 2**41 (float32 has 24 bits: any non-zero span is wider than this)
        e = math.frexp(big)[1] - 40 if big > 0 else 0
        if span > 0:
            e = max(e, math.frexp(span / self.bins)[1] - 1)
        while not _fits(lo, hi, e, self.bins):
            e += 1
        return e

    def _regrid(self, e: int, k0: int) -> None:
        """Move the counts to grid exponent ``e`` (>= the current) and window start ``k0``."""
        occupied = np.flatnonzero(self.counts)
        new = np.zeros(self.bins, np.int64)
        if occupied.size:
            idx = ((self.k0 + occupied) >> (e - self.e)) - k0
            np.add.at(new, idx, self.counts[occupied])
        self.counts, self.e, self.k0 = new, e, k0

    def _window_for(self, lo: float, hi: float) -> None:
        """Grow / move the window so that it holds [lo, hi] (which covers everything counted)."""
        if self.e is None:
            self.e = self._first_exponent(lo, hi)
            self.k0 = math.floor(math.ldexp(lo, -self.e))
            return
        e = self.e
        while not _fits(lo, hi, e, self.bins):
            e += 1
        k0 = math.floor(math.ldexp(lo, -e))
        if e != self.e or k0 < self.k0 or math.floor(math.ldexp(hi, -e)) >= self.k0 + self.bins:
            self._regrid(e, k0)

    def add(self, flat: np.ndarray, lo: float, hi: float, least: float, finite: bool = False) -> None:
        """Count ``flat`` (1-D float32; its magnitudes when ``absolute``), whose finite counted values
        lie in ``[lo, hi]`` (the caller's extremes: of the values, or bounds of the magnitudes),
        widening the window first when needed. ``least``: the least value counted (the least finite
        magnitude when ``absolute``). ``finite``: the caller knows every value is finite (the faster
        loop)."""
        new_lo, new_hi = min(self.lo, lo), max(self.hi, hi)
        if self.e is None or new_lo < self.lo or new_hi > self.hi:
            self._window_for(new_lo, new_hi)
        self.lo, self.hi = new_lo, new_hi
        _count(flat, self.counts, self.absolute, math.ldexp(1.0, -self.e), float(self.k0), finite)
        self.least = min(self.least, least)

    def relu(self) -> "WideningHistogram":
        """The histogram of ``max(x, 0)`` for the values counted here (signed only): negative bins
        move into the bin holding 0, on the same grid (exact)."""
        if self.absolute:
            raise ValueError("relu() needs a signed histogram")
        out = WideningHistogram(self.bins)
        out.counts, out.e, out.k0 = self.counts.copy(), self.e, self.k0
        out.lo, out.hi = max(self.lo, 0.0), max(self.hi, 0.0)
        out.least = max(self.least, 0.0)
        if self.e is None or self.k0 >= 0:
            return out
        if self.k0 + self.bins <= 0:  # all negative: all zeros
            out.counts, out.k0 = np.zeros(self.bins, np.int64), 0
            out.counts[0] = self.counts.sum()
            return out
        zero = -self.k0
        out.counts[zero] += out.counts[:zero].sum()
        out.counts[:zero] = 0
        return out

    def rebin(self, edges: np.ndarray) -> np.ndarray:
        """Counts over ``edges`` (increasing, covering the counted values) as ``np.histogram`` would bin the
        values (last bin closed); see the module docstring for where this is exact."""
        total = int(self.counts.sum())
        cum = np.zeros(len(edges), np.float64)
        if total and self.e is not None:
            w = math.ldexp(1.0, self.e)
            first = math.floor(self.least / w) - self.k0
            last = math.floor(self.hi / w) - self.k0
            grid = (self.k0 + np.arange(first, last + 2, dtype=np.float64)) * w
            grid[0] = self.least  # nothing is below the least value
            grid[-1] = max(self.hi, np.nextafter(grid[-2], np.inf))
            counted = np.concatenate([[0.0], np.cumsum(self.counts[first:last + 1], dtype=np.float64)])
            if self.least >= self.hi:
                cum = np.where(np.asarray(edges, np.float64) > self.least, float(total), 0.0)
            else:
                cum = np.interp(np.asarray(edges, np.float64), grid, counted)
            cum[0], cum[-1] = 0.0, float(total)
        return np.diff(np.rint(cum)).astype(np.int64)
