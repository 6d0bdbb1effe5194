"""The counting loops of :mod:`vacc_deploy.calibration._kernels` in plain numpy: the same results
for every input (tests/calibration/test_stats.py runs both), about 2-3x the CPU per value. They serve
while numba loads: importing numba and loading the compiled loops from its disk cache costs about
3 s of CPU on the 2-core development box, so :func:`vacc_deploy.calibration.histogram.kernels`
hands these out until that load (on its own thread) is done, and the first images' statistics
need not wait for it. Also home of the ordered-key helpers both modules share (no numba import).
"""

from __future__ import annotations

import numpy as np

#: ordered int32 keys (see :func:`extremes`) of -inf and +inf
KEY_NEG_INF, KEY_POS_INF = -0x7F800001, 0x7F800000

#: values per chunk (1 MB of float32; the float64 bins 2 MB)
CHUNK = 1 << 18

_MASK = np.int32(0x7FFFFFFF)


def key_value(key: int) -> float:
    """The float32 value (as a Python float) whose ordered key is ``key`` (see :func:`extremes`);
    -0.0 comes back as 0.0."""
    bits = key ^ ((key >> 31) & 0x7FFFFFFF)
    return float(np.array([bits], np.int32).view(np.float32)[0]) + 0.0


def extremes(flat: np.ndarray) -> tuple[int, int, int]:
    """:func:`vacc_deploy.calibration._kernels.extremes`: (least key, largest key, least magnitude
    key) of a 1-D float32 array; ``(KEY_POS_INF, KEY_NEG_INF, 0x7FFFFFFF)`` when empty."""
    least, largest, low_mag = KEY_POS_INF, KEY_NEG_INF, int(_MASK)
    bits = flat.view(np.int32)
    for s in range(0, bits.size, CHUNK):
        b = bits[s:s + CHUNK]
        mag = b & _MASK
        keys = b ^ ((b >> 31) & _MASK)
        least, largest = min(least, int(keys.min())), max(largest, int(keys.max()))
        low_mag = min(low_mag, int(mag.min()))
    return least, largest, low_mag


def _positions(chunk: np.ndarray, absolute: bool, inv_w: float, k0: float) -> np.ndarray:
    a = chunk.astype(np.float64)
    if absolute:
        np.abs(a, out=a)
    a *= inv_w
    np.floor(a, out=a)
    a -= k0
    return a


def count_finite(flat: np.ndarray, absolute: bool, inv_w: float, k0: float, out: np.ndarray) -> None:
    """:func:`vacc_deploy.calibration._kernels.count_finite`: every value's bin (none outside)."""
    for s in range(0, flat.size, CHUNK):
        pos = _positions(flat[s:s + CHUNK], absolute, inv_w, k0)
        out += np.bincount(pos.astype(np.int64), minlength=out.size)


def count(flat: np.ndarray, absolute: bool, inv_w: float, k0: float, out: np.ndarray) -> None:
    """:func:`vacc_deploy.calibration._kernels.count`: the values in the window, the rest skipped."""
    for s in range(0, flat.size, CHUNK):
        pos = _positions(flat[s:s + CHUNK], absolute, inv_w, k0)
        pos = pos[(pos >= 0.0) & (pos < out.size)]  # false for NaN and +-inf
        out += np.bincount(pos.astype(np.int64), minlength=out.size)
