"""Which convs to keep in float (``skip_conv_layers``) for the ``vacc`` numerics, ranked by the
emulated build's own sensitivity. Torch-free.

Why not the onnxruntime layer analysis: under TVM's rules a conv in ``skip_conv_layers`` keeps
float weights and a float output, but its argument is still rounded to int8 when its producer is
a quantized conv (the partition pass's ``cast_hint``, docs/vacc.md), so what a skip saves depends
on its neighbours: keeping the image's first two convs float removes three rounding points, either
one alone far fewer. The analysis of ONNX Runtime's QDQ graph cannot see that.

Greedy forward selection: step 1 scores every candidate conv kept float alone; each later step
adds, to the convs chosen so far, the one (among the ``KEEP`` best of step 1) whose addition gives
the highest fidelity. Fidelity = PSNR of the emulated output against fp32's on the first
``SAMPLES`` images of the calibration set (the search's own data, never the evaluation set). The
emulated models are made in memory from the trial build's calibration ranges (no build cache).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx

SAMPLES = 4
#: Candidates kept after the first step (each later step scores only these).
KEEP = 8
#: Models with more convs than this rank only their edge convs and the first / last ``KEEP`` convs.
MAX_CANDIDATES = 40


def candidates(model: onnx.ModelProto, edges: Sequence[str]) -> list[str]:
    """The convs a search may keep in float, in TVM's order: all of them for a small model, else the
    edge convs and the first and last ``KEEP`` (where the image is read and written)."""
    from vacc_deploy.backends.vacc.emulation import tvm_conv_order

    order = tvm_conv_order(model)
    if len(order) <= MAX_CANDIDATES:
        return order
    return list(dict.fromkeys([*edges, *order[:KEEP], *order[-KEEP:]]))


def _runner(inputs: Sequence[np.ndarray]) -> Callable[[onnx.ModelProto], np.ndarray]:
    import onnxruntime as ort

    from vacc_deploy.backends.ort.session import session_options

    def run(model: onnx.ModelProto) -> np.ndarray:
        sess = ort.InferenceSession(model.SerializeToString(), session_options(), providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return np.concatenate([sess.run(None, {name: x})[0] for x in inputs])

    return run


def greedy_float_convs(fp32_path: Path, ranges: dict[str, tuple[float, float]], inputs: Sequence[np.ndarray], *,
                       weight_scale: str, per_channel: bool, fixed: Sequence[str], pool: Sequence[str],
                       steps: int) -> list[dict]:
    """Up to ``steps`` convs of ``pool`` in the order greedy selection adds them to ``fixed`` (convs
    float anyway); each entry ``{"layer", "fidelity_db"}`` (fidelity with it and those before it)."""
    from vacc_deploy.backends.vacc.emulation import emulate, symmetric_thresholds

    model = onnx.load(str(fp32_path))
    thresholds = symmetric_thresholds(ranges)
    run = _runner(inputs)
    ref = run(model).astype(np.float64)
    peak = float(np.abs(ref).max()) or 1.0

    def fidelity(floats: list[str]) -> float:
        emulated, _ = emulate(model, thresholds, weight_scale=weight_scale, per_channel=per_channel,
                              float_convs=floats)
        mse = float(np.mean((run(emulated) - ref) ** 2))
        return float("inf") if mse == 0 else 10.0 * np.log10(peak * peak / mse)

    chosen: list[dict] = []
    left = [c for c in pool if c not in fixed]
    for step in range(min(steps, len(left))):
        scores = {c: fidelity([*fixed, *(e["layer"] for e in chosen), c]) for c in left}
        best = max(scores, key=lambda c: scores[c])
        chosen.append({"layer": best, "fidelity_db": scores[best]})
        if step == 0:
            left = sorted(scores, key=lambda c: -scores[c])[:KEEP]
        left.remove(best)
        if scores[best] == float("inf"):
            break
    return chosen
