"""Compiled loops of :mod:`vacc_deploy.calibration.histogram` (numba, cached on disk; imported lazily).

:func:`count` scans a 1-D float32 array once, takes magnitudes when ``absolute``, and adds the grid
bin ``floor(a * inv_w) - k0`` of each value ``a`` to ``out`` when it lies in ``[0, out.size)`` (NaN
and +-inf never do). ``inv_w`` is a power of two, so ``a * inv_w - k0`` is exact in float64. It
releases the GIL, so chunks of one array run in parallel threads (each with its own ``out``).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def count(flat, absolute, inv_w, k0, out):  # pragma: no cover - compiled
    """Count the values in the window; return the least value counted."""
    least, n = np.inf, out.size
    for i in range(flat.size):
        a = np.float64(flat[i])
        if absolute:
            a = abs(a)
        pos = a * inv_w - k0
        if pos >= 0.0 and pos < n:  # false for NaN and +-inf
            out[int(pos)] += 1
            if a < least:  # a branch, rarely taken: no dependency chain between elements
                least = a
    return least


@numba.njit(cache=True)
def kl_divergences(hist, n_quant, eps):  # pragma: no cover - compiled
    """KL(p || q) of every window ``[zero - i, zero + i + 1)``, ``i`` from ``n_quant // 2`` to
    ``zero = hist.size // 2``, as ``methods._window_divergence`` computes it (float64 here)."""
    nb = hist.size
    zero, half = nb // 2, n_quant // 2
    cum = np.zeros(nb + 1, np.int64)  # cum[k] = hist[:k].sum()
    for k in range(nb):
        cum[k + 1] = cum[k] + hist[k]
    out = np.empty(zero + 1 - half)
    for i in range(half, zero + 1):
        start, end = zero - i, min(zero + i + 1, nb)
        size = end - start
        p = hist[start:end].astype(np.float64)
        p[0] += cum[start]
        p[-1] += cum[nb] - cum[end]
        merged = size // n_quant
        body = n_quant * merged
        q = np.zeros(size)
        for j in range(n_quant):
            a, b = j * merged, (j + 1) * merged
            chunk = cum[start + (size if j == n_quant - 1 else b)] - cum[start + a]
            norm = 0
            for k in range(a, min(b, body)):
                norm += p[k] != 0
            if norm:
                q[a:min(b, body)] = chunk // norm
        out[i - half] = _smoothed_kl(p, q, eps)
    return out


@numba.njit(cache=True)
def _smoothed_kl(p, q, eps):  # pragma: no cover - compiled
    """KL after eps-smoothing both (zeros get eps, the non-zeros give it up); inf if one is all zero."""
    for arr in (p, q):
        zeros = 0
        for v in arr:
            zeros += v == 0
        if zeros == arr.size:
            return np.inf
        eps1 = eps * zeros / (arr.size - zeros)
        for k in range(arr.size):
            arr[k] += eps if arr[k] == 0 else -eps1
    ps, qs = p.sum(), q.sum()
    kl = 0.0
    for k in range(p.size):
        pk, qk = p[k] / ps, q[k] / qs
        kl += pk * np.log(pk / qk)
    return kl
