"""Which convs to keep in float (``skip_conv_layers``) for the ``vacc`` numerics, ranked by the
emulated build's own sensitivity. Torch-free.

Why not the onnxruntime layer analysis: under TVM's rules a conv in ``skip_conv_layers`` keeps
float weights and a float output, but its argument is still rounded to int8 when its producer is
a quantized conv, and a quantized conv rounds a float argument too (the partition pass's
``cast_hint``, ``conv2d_rewrite``; docs/vacc.md). So a float conv removes an activation rounding
only next to the image, next to the output, or between two float convs: what a skip saves depends
on its neighbours, which the analysis of ONNX Runtime's QDQ graph cannot see.

Greedy forward selection over moves of one conv or of two adjacent convs (the second reads the
first's result through single-input ops only, so keeping both float removes the rounding between
them): each step takes the move that removes the most squared error (against fp32) per conv and
fits the budget (squared error, not dB: a move that makes the output exact would have an infinite
dB gain and would win whatever it costs).
Fidelity = PSNR of the emulated output against fp32's on ``CROPS`` crops of ``CROP`` pixels cut
from the first ``SAMPLES`` calibration samples (the search's own data, never the evaluation set),
run as one batch of a copy of the model with free spatial dims (the full input size when the model
does not run at another size). The emulated models are made in memory from the trial build's
calibration ranges.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx

from vacc_deploy.errors import UsageError

if TYPE_CHECKING:
    from vacc_deploy.backends.ort.options import BuildOptions
    from vacc_deploy.pipeline.stages import Upstream

log = logging.getLogger(__name__)

SAMPLES = 4
CROPS = 16
CROP = 32
#: Models with more convs than this rank only their edge convs and their first / last 8 convs.
MAX_CANDIDATES = 40
#: The number of convs ranked when ``--max-float-layers`` is not given.
DEFAULT_STEPS = 8
_SINGLE_INPUT = {"Relu", "Clip", "LeakyRelu", "MaxPool", "AveragePool", "DepthToSpace", "Reshape",
                 "Transpose", "Sigmoid", "Identity"}


def candidates(model: onnx.ModelProto, edges: Sequence[str]) -> list[str]:
    """The convs a search may keep in float, in TVM's order: all of them for a small model, else the
    edge convs and the first and last 8 (where the image is read and written)."""
    from vacc_deploy.backends.ort.layers import tvm_conv_order

    order = tvm_conv_order(model)
    if len(order) <= MAX_CANDIDATES:
        return order
    return list(dict.fromkeys([*edges, *order[:8], *order[-8:]]))


def adjacent_pairs(model: onnx.ModelProto, pool: Sequence[str]) -> list[tuple[str, str]]:
    """(a, b) for convs of ``pool`` where b's data input is a's result through single-input ops."""
    producer = {o: n for n in model.graph.node for o in n.output}
    pairs = []
    for b in (n for n in model.graph.node if n.name in pool and n.op_type == "Conv"):
        node = producer.get(b.input[0])
        while node is not None and node.op_type in _SINGLE_INPUT:
            node = producer.get(node.input[0])
        if node is not None and node.op_type == "Conv" and node.name in pool:
            pairs.append((node.name, b.name))
    return pairs


def _free_size(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose input and output batch and spatial dims are symbolic."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.value_info[:]
    for vi in (*out.graph.input, *out.graph.output):
        dims = vi.type.tensor_type.shape.dim
        for i, d in enumerate(dims):
            if i != 1:
                d.ClearField("dim_value")
                d.dim_param = f"d{i}"
    return out


def _crops(samples: Sequence[np.ndarray], size: int) -> np.ndarray:
    """Up to ``CROPS`` non-overlapping ``size`` x ``size`` crops, taken in turn from each sample."""
    grids = [[s[:, :, y:y + size, x:x + size] for y in range(0, s.shape[2] - size + 1, size)
              for x in range(0, s.shape[3] - size + 1, size)] for s in samples]
    picked = [g[i] for i in range(max(map(len, grids), default=0)) for g in grids if i < len(g)]
    return np.concatenate(picked[:CROPS])


def _runner(model: onnx.ModelProto, samples: Sequence[np.ndarray]) -> tuple[Callable[[onnx.ModelProto], np.ndarray], bool]:
    """(run, resized): ``run(model)`` -> the outputs on the crops (resized) or on the samples."""
    import onnxruntime as ort

    from vacc_deploy.backends.ort.session import session_options

    def run_on(m: onnx.ModelProto, batches: Sequence[np.ndarray]) -> np.ndarray:
        sess = ort.InferenceSession(m.SerializeToString(), session_options(), providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return np.concatenate([sess.run(None, {name: b})[0] for b in batches])

    if min(samples[0].shape[2:]) > CROP:
        crops = _crops(samples, CROP)
        try:
            run_on(_free_size(model), [crops[:1]])
            return (lambda m: run_on(_free_size(m), [crops])), True
        except Exception as exc:  # noqa: BLE001 (a fixed Reshape or similar: score at the model's own size)
            log.info("vacc ranking: the model does not run on %d-pixel crops (%s); scoring whole samples", CROP, exc)
    return (lambda m: run_on(m, samples)), False


def greedy_float_convs(fp32_path: Path, ranges: dict[str, tuple[float, float]], samples: Sequence[np.ndarray], *,
                       weight_scale: str, per_channel: bool, fixed: Sequence[str], pool: Sequence[str],
                       steps: int) -> list[dict]:
    """Up to ``steps`` convs of ``pool`` in the order greedy selection adds them to ``fixed`` (convs
    float anyway); each entry ``{"layer", "fidelity_db"}`` (fidelity with it and those before it)."""
    from vacc_deploy.backends.ort.vacc_numerics import emulate, symmetric_thresholds

    model = onnx.load(str(fp32_path))
    thresholds = symmetric_thresholds(ranges)
    run, _ = _runner(model, samples)
    ref = run(model).astype(np.float64)
    peak = float(np.abs(ref).max()) or 1.0

    def error(floats: Sequence[str]) -> float:
        emulated, _ = emulate(model, thresholds, weight_scale=weight_scale, per_channel=per_channel,
                              float_convs=list(floats))
        return float(np.mean((run(emulated) - ref) ** 2))

    def db(mse: float) -> float:
        return float("inf") if mse == 0 else float(10.0 * np.log10(peak * peak / mse))

    left = [c for c in pool if c not in fixed]
    pairs = adjacent_pairs(model, left)
    chosen: list[dict] = []
    current = error(list(fixed))
    while len(chosen) < steps and left and current > 0:
        taken = [*fixed, *(e["layer"] for e in chosen)]
        room = steps - len(chosen)
        moves = [(c,) for c in left] + [p for p in pairs if room >= 2 and not set(p) & set(taken)]
        scores = {m: error([*taken, *m]) for m in moves}
        best = max(moves, key=lambda m: (current - scores[m]) / len(m))  # squared error removed per conv
        for c in best:
            chosen.append({"layer": c, "fidelity_db": db(scores[best])})
            left.remove(c)
        pairs = [p for p in pairs if not set(p) & set(best)]
        current = scores[best]
    return chosen


def ranking(up: Upstream, opts: BuildOptions, limit: int | None) -> list[dict]:
    """The greedy ranking for the int8 build ``opts`` of ``up``'s export (its calibration ranges,
    from the ranges stage; the first ``SAMPLES`` samples of ``up``'s calibration set); at most
    ``limit`` convs (``DEFAULT_STEPS`` when unbounded). The convs ``opts`` keeps float anyway
    (``skip_layers``, the edges unless ``float_edges`` is off) stay float in every scored model and
    are not ranked. Raises UsageError (option ``calib_images``) without a calibration set."""
    import itertools

    from vacc_deploy.backends.ort.layers import edge_convs, float_layers_of
    from vacc_deploy.calibration.dataset import CalibSource
    from vacc_deploy.pipeline.stages import ranges_stage

    if up.calib is None:
        raise UsageError("a search to a dB target needs calibration images (none given)", option="calib_images")
    ranges = ranges_stage(up, opts).ranges
    samples = list(itertools.islice(CalibSource(up.calib, up.exported.spec), SAMPLES))
    fp32_path = up.exported.onnx_path
    model = onnx.load(str(fp32_path), load_external_data=False)
    fixed, _ = float_layers_of(model, opts)
    return greedy_float_convs(fp32_path, ranges, samples, weight_scale=opts.weight_scale,
                              per_channel=opts.per_channel, fixed=fixed,
                              pool=candidates(model, edge_convs(model)),
                              steps=DEFAULT_STEPS if limit is None else limit)


def refinements(base: BuildOptions, methods: Sequence[str], *, per_channel: bool,
                skip_layers: Sequence[int | str], tried: tuple[str | None, str]) -> list[BuildOptions]:
    """The last step when the target is missed: the ``calibrate_mode`` x ``weight_scale`` pairs
    other than ``tried`` (the best trial's), with its per-channel setting and float convs. Which
    method wins can change once the convs that dominated the error are float (lesrcnn_x2 validation,
    edge convs float: kl_divergence -0.076 dB, percentile -0.106 dB; no conv float: -0.586 / -0.560 dB)."""
    import dataclasses

    from vacc_deploy.types import WEIGHT_SCALES

    return [dataclasses.replace(base, quant=m, per_channel=per_channel, weight_scale=ws,
                                skip_layers=tuple(skip_layers))
            for m in methods for ws in WEIGHT_SCALES if (m, ws) != tried]
