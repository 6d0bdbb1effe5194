"""Compiled loops of :mod:`vacc_deploy.quant.histogram` (numba, cached on disk; imported lazily).

Each scans a 1-D float32 array once, skips NaN and +-inf, takes magnitudes when ``absolute``, and
adds the grid bin ``floor(a * inv_w) - k0`` of each counted value ``a`` to ``out`` when it lies in
``[0, out.size)``. ``inv_w`` is a power of two, so ``a * inv_w - k0`` is exact in float64. They
release the GIL, so chunks of one array can run in parallel threads (each with its own ``out``).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def scan(flat, absolute, inv_w, k0, out):  # pragma: no cover - compiled
    """Count the values in the window; return (min, max, least counted value, values outside)."""
    vmin, vmax, least, misses, n = np.inf, -np.inf, np.inf, 0, out.size
    for i in range(flat.size):
        v = np.float64(flat[i])
        if not v - v == 0.0:  # NaN or inf
            continue
        if v < vmin:  # branches, not min(): rarely taken, so no dependency chain between elements
            vmin = v
        if v > vmax:
            vmax = v
        a = abs(v) if absolute else v
        if a < least:
            least = a
        pos = a * inv_w - k0
        if pos >= 0.0 and pos < n:
            out[int(pos)] += 1
        else:
            misses += 1
    return vmin, vmax, least, misses


@numba.njit(nogil=True, cache=True)
def recount(flat, absolute, inv_w, k0, out, old_inv_w, old_k0, old_n):  # pragma: no cover - compiled
    """Count only the values that fell outside the old window ``(old_inv_w, old_k0, old_n)``."""
    n = out.size
    for i in range(flat.size):
        v = np.float64(flat[i])
        if not v - v == 0.0:
            continue
        a = abs(v) if absolute else v
        old = a * old_inv_w - old_k0
        if old >= 0.0 and old < old_n:
            continue
        pos = a * inv_w - k0
        if pos >= 0.0 and pos < n:
            out[int(pos)] += 1
