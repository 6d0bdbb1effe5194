"""Error-compensating rounding of int8 Conv weights (GPTQ), written onto ONNX Runtime's own grid.
Torch-free.

ONNX Runtime's QDQ quantizer rounds each weight to the nearest level of its channel's grid
(symmetric, step ``max|w| / qmax``). Nearest rounding is optimal weight by weight but not for the
layer's output: the errors of the ``K = Cin * kh * kw`` weights of an output channel add up over
inputs that are strongly correlated (neighbouring pixels, correlated channels). GPTQ (Frantar et
al., 2022, "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers",
after Optimal Brain Quantization) rounds the weights one input column at a time and moves each
column's rounding error onto the columns not rounded yet, weighted by the inverse of the input
second-moment matrix ``H = E[x x^T]`` (from calibration, :mod:`.conv_stats`), so that the layer's
output error ``E[((W_q - W) x)^2]`` is close to least squares. Weights stay on the same grid (same
scales, same levels range), so ONNX Runtime's quantizer, given the rounded fp32 weights, writes
exactly these int8 levels: the first weight of each row to be rounded is its largest one, whose
level (``+-qmax``) and hence the row's scale are pinned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnx
from onnx import numpy_helper

from vacc_deploy.errors import BuildError

#: Damping added to H's diagonal, as a fraction of its mean (GPTQ's ``percdamp``).
DAMP = 0.01
BLOCK = 128


def grid_scale(w: np.ndarray, qmax: int, per_channel: bool) -> np.ndarray:
    """Per-row step of ONNX Runtime's symmetric weight grid for ``w`` (O, K): ``max|w| / qmax`` per
    row (per channel) or over the whole tensor, 1 where the maximum is 0 (as ORT does)."""
    a = np.abs(w).max(axis=1) if per_channel else np.full(w.shape[0], np.abs(w).max())
    s = a.astype(np.float64) / qmax
    s[s == 0] = 1.0
    return s


def _inverse_factor(h: np.ndarray) -> np.ndarray:
    """Upper Cholesky factor U of inv(H) (H damped, dead inputs made harmless), float64."""
    h = np.array(h, dtype=np.float64)
    dead = np.diag(h) <= 0
    h[dead, dead] = 1.0
    h[np.diag_indices_from(h)] += DAMP * float(np.mean(np.diag(h)))
    try:
        low = np.linalg.cholesky(h)
        inv = np.linalg.solve(low.T, np.linalg.solve(low, np.eye(len(h))))
        return np.linalg.cholesky(inv).T
    except np.linalg.LinAlgError as exc:
        raise BuildError(f"GPTQ: the input second moments are not positive definite: {exc}") from exc


def gptq_levels(w: np.ndarray, hessian: np.ndarray, scale: np.ndarray, qmax: int) -> np.ndarray:
    """Integer levels (O, K) in [-qmax, qmax] for weights ``w`` (O, K) on the grid ``scale`` (O,)
    given the input second moments ``hessian`` (K, K) of this layer.

    Columns are rounded in order of decreasing ``H`` diagonal (most active inputs first), in blocks
    of ``BLOCK`` with deferred updates. Each row's largest ``|w|`` (level ``+-qmax`` under nearest
    rounding) keeps that level so the row's grid is reproducible from the rounded weights."""
    w = np.asarray(w, dtype=np.float64)
    o, k = w.shape
    if hessian.shape != (k, k) or scale.shape != (o,):
        raise BuildError(f"GPTQ: weights {w.shape}, second moments {hessian.shape}, scales {scale.shape} disagree")
    order = np.argsort(-np.diag(hessian), kind="stable")
    u = _inverse_factor(np.asarray(hessian)[np.ix_(order, order)])
    work = w[:, order].copy()
    pin = np.argmax(np.abs(work), axis=1)  # column (in processing order) of each row's largest weight
    pin_level = np.sign(work[np.arange(o), pin]) * qmax
    q = np.zeros_like(work)
    for b0 in range(0, k, BLOCK):
        b1 = min(b0 + BLOCK, k)
        err = np.zeros((o, b1 - b0))
        for i in range(b0, b1):
            col = work[:, i]
            level = np.clip(np.rint(col / scale), -qmax, qmax)
            pinned = pin == i
            level[pinned] = pin_level[pinned]
            q[:, i] = level
            e = (col - level * scale) / u[i, i]
            work[:, i + 1:b1] -= np.outer(e, u[i, i + 1:b1])
            err[:, i - b0] = e
        work[:, b1:] -= err @ u[b0:b1, b1:]
    out = np.empty_like(q)
    out[:, order] = q
    return out


def round_conv_weights(model: onnx.ModelProto, hessians: Mapping[str, np.ndarray], convs: Sequence[str], *,
                       per_channel: bool = True, qmax: int = 127) -> dict[str, float]:
    """Replace the fp32 weights of the Conv nodes ``convs`` by GPTQ-rounded values ``level * step``
    on ONNX Runtime's grid (``qmax`` 127 for 8-bit weights, 64 for 7-bit), in place. ``hessians``
    maps each Conv name to its (K, K) input second moments (K = Cin * kh * kw; group 1).

    Returns, per Conv, the ratio of its estimated output error energy (``tr(D H D^T)``, D the
    weight error) under GPTQ to that under nearest rounding (below 1 is better). Weights shared by
    several nodes must be untied first (BuildError otherwise)."""
    inits = {t.name: t for t in model.graph.initializer}
    nodes = {n.name: n for n in model.graph.node if n.op_type == "Conv"}
    users: dict[str, int] = {}
    for n in model.graph.node:
        for name in n.input:
            users[name] = users.get(name, 0) + 1
    gains: dict[str, float] = {}
    for name in convs:
        node = nodes.get(name)
        if node is None or node.input[1] not in inits or name not in hessians:
            raise BuildError(f"GPTQ: Conv {name!r} has no initializer weight or no input statistics")
        if users[node.input[1]] > 1:
            raise BuildError(f"GPTQ: Conv {name!r} shares its weight {node.input[1]!r}; untie it first")
        tensor = inits[node.input[1]]
        w4 = numpy_helper.to_array(tensor)
        w = w4.reshape(w4.shape[0], -1).astype(np.float64)
        h = np.asarray(hessians[name], dtype=np.float64)
        scale = grid_scale(w, qmax, per_channel)
        levels = gptq_levels(w, h, scale, qmax)
        rounded = levels * scale[:, None]
        nearest = np.clip(np.rint(w / scale[:, None]), -qmax, qmax) * scale[:, None]
        gains[name] = _energy(rounded - w, h) / max(_energy(nearest - w, h), 1e-300)
        tensor.CopyFrom(numpy_helper.from_array(rounded.reshape(w4.shape).astype(np.float32), tensor.name))
    return gains


def _energy(d: np.ndarray, h: np.ndarray) -> float:
    return float(np.einsum("ok,kl,ol->", d, h, d))
