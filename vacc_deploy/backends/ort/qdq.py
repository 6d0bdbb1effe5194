"""int8 (QDQ) quantization from precomputed ranges, and fp16 conversion.

:func:`quantize_int8` does what ``onnxruntime.quantization.quantize_static`` does after calibration
(shape inference, opset check, ``QDQQuantizer``), but takes the ranges from our streaming calibration
as a ``TensorsData`` instead of running ORT's calibrators. Activations are uint8 (asymmetric,
range widened to include 0 by ORT), weights int8 symmetric, per channel (axis 0 for Conv) by default.

Outputs are written atomically: to a temporary file beside the target, then ``os.replace``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx

from vacc_deploy.artifacts import atomic_path
from vacc_deploy.errors import BuildError, UsageError
from vacc_deploy.calibration.collect import DEFAULT_OP_TYPES, infer_shapes, select_tensors

log = logging.getLogger(__name__)

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def load_model(model_path: str | Path) -> onnx.ModelProto:
    """Read an ONNX model; BuildError naming the file when it cannot be read."""
    try:
        return onnx.load(str(model_path))
    except Exception as exc:  # OSError, DecodeError, ...
        raise BuildError(f"cannot read ONNX model {model_path}: {exc}") from exc


def _tensors_data(ranges: Mapping[str, tuple[float, float]]):  # -> TensorsData
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData

    data = {}
    for name, (lo, hi) in ranges.items():
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi:
            raise BuildError(f"range of tensor {name!r} is invalid: ({lo}, {hi})")
        data[name] = TensorData(lowest=np.float32(lo), highest=np.float32(hi))
    return TensorsData(CalibrationMethod.MinMax, data)


def _check_request(model: onnx.ModelProto, ranges: Mapping[str, tuple[float, float]],
                   exclude: Sequence[str], op_types: Sequence[str]) -> None:
    """UsageError for unknown excluded node names; BuildError when a needed range is missing."""
    names = {n.name for n in model.graph.node}
    unknown = [n for n in exclude if n not in names]
    if unknown:
        raise UsageError(f"nodes to keep in float not found in the model: {', '.join(unknown)}")
    kept = onnx.ModelProto()
    kept.CopyFrom(model)
    nodes = [n for n in kept.graph.node if n.name not in set(exclude)]
    del kept.graph.node[:]
    kept.graph.node.extend(nodes)
    missing = [t for t in select_tensors(kept, op_types) if t not in ranges]
    if missing:
        raise BuildError(f"no calibration range for {len(missing)} tensor(s), e.g. {missing[0]!r}")


def untie_initializers(model: onnx.ModelProto) -> int:
    """Give every node input that shares an initializer with another node its own copy.

    LESRCNN applies one upsampler twice, so two Conv nodes share weights. ONNX Runtime's accurate
    int8 mode (``session.x64quantprecision``) rewrites each Conv's weights and fails on a shared
    initializer ("Attempt to replace the existing tensor"). Returns how many copies were made.
    """
    inits = {t.name: t for t in model.graph.initializer}
    seen: dict[str, int] = {}
    copies = 0
    for node in model.graph.node:
        for j, name in enumerate(node.input):
            if name not in inits:
                continue
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                t = onnx.TensorProto()
                t.CopyFrom(inits[name])
                t.name = f"{name}__untied{seen[name] - 1}"
                model.graph.initializer.append(t)
                node.input[j] = t.name
                copies += 1
    return copies


def float_reads_float(model: onnx.ModelProto, is_int8: Callable[[onnx.NodeProto], bool],
                      made_by: Mapping[str, str]) -> int:
    """Make every float node read the float tensor instead of its Q/DQ (rounded, clipped) copy.

    ONNX Runtime's QDQ quantizer routes *every* consumer of a quantized activation through its
    QuantizeLinear -> DequantizeLinear pair, and gives a Conv's output a Q/DQ pair even when only
    float ops read it. A float op (``is_int8(node)`` false: not in the quantized op set, or kept
    float) then computes on rounded, range-clipped values that no int8 kernel needs: a residual Add
    carries the clipping of the next conv's input range to the output, a LeakyRelu after a conv is
    fed the conv's clipped output range. Rewires such inputs to the tensor before the pair, then
    drops the Q/DQ nodes left without readers (a Conv whose readers are all float keeps a float
    output: ONNX Runtime cannot fuse it into QLinearConv, which costs it the int8 output kernel).
    Graph outputs and QuantizeLinear readers are left alone. ``made_by`` maps each tensor of the
    float model to the op type that produced it: a pair is bypassed only when the tensor before it
    is still made by that op type (ORT deletes a Relu/Clip after a quantized Conv and gives its
    output name to the Conv, the activation then living only in the pair's clipping: that pair
    stays). Edits ``model`` in place; returns how many inputs were rewired.
    """
    producer = producers(model)
    rewired = 0
    for node in model.graph.node:
        if node.op_type in QDQ_OPS or is_int8(node):
            continue
        for j, name in enumerate(node.input):
            dq = producer.get(name)
            q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
            src = q.input[0] if q is not None and q.op_type == "QuantizeLinear" else None
            if src is not None and getattr(producer.get(src), "op_type", None) == made_by.get(src):
                node.input[j] = src
                rewired += 1
    _drop_unread_qdq(model)
    return rewired


def producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    """Tensor name -> the node that produces it (graph inputs and initializers absent)."""
    return {o: n for n in model.graph.node for o in n.output}


def producer_ops(model: onnx.ModelProto) -> dict[str, str]:
    """Tensor name -> op type of the node that produces it (graph inputs and initializers absent)."""
    return {t: n.op_type for t, n in producers(model).items()}


def _drop_unread_qdq(model: onnx.ModelProto) -> None:
    """Remove Q/DQ nodes none of whose outputs is read by a node or is a graph output."""
    while True:
        read = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
        dead = [n for n in model.graph.node
                if n.op_type in QDQ_OPS and not any(o in read for o in n.output)]
        if not dead:
            return
        for n in dead:
            model.graph.node.remove(n)


def quantize_int8(
    fp32_model_path: str | Path,
    out_path: str | Path,
    ranges: Mapping[str, tuple[float, float]],
    per_channel: bool = True,
    nodes_to_exclude: Sequence[str] = (),
    op_types: Sequence[str] = DEFAULT_OP_TYPES,
    reduce_range: bool = False,
    activation_bits: int = 8,
) -> None:
    """Write a QDQ int8 model of ``fp32_model_path`` to ``out_path`` using ``ranges``.

    ``ranges`` maps every tensor :func:`select_tensors` picks for ``op_types`` (on non-excluded
    nodes) to (min, max). Nodes named in ``nodes_to_exclude`` stay float, and float
    nodes read float tensors (:func:`float_reads_float`). Raises UsageError / BuildError; never
    leaves a partial ``out_path``.

    ``reduce_range`` quantizes weights to 7 bits. ONNX Runtime's fused u8s8 CPU kernels can saturate
    on x86-64 CPUs without VNNI (AVX2 only): the QDQ model itself is exact to its ranges, but running
    it there with graph optimizations on may be noticeably less accurate; reduce_range avoids it.

    ``activation_bits`` is 8 (uint8 activations, the default) or 16 (uint16 activations with the
    same int8 weights: ONNX QuantizeLinear/DequantizeLinear at opset 21, which ONNX Runtime's CPU
    runs in float, so it is a fidelity reference rather than a fast build).
    """
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer
    from onnxruntime.quantization.quant_utils import QuantType, update_opset_version

    if activation_bits not in (8, 16):
        raise UsageError(f"activation_bits {activation_bits}: expected 8 or 16")
    activation_type = QuantType.QUInt8 if activation_bits == 8 else QuantType.QUInt16
    model = load_model(fp32_model_path)
    untie_initializers(model)
    model = infer_shapes(model)
    _check_request(model, ranges, list(nodes_to_exclude), list(op_types))
    made_by = producer_ops(model)
    try:
        model = update_opset_version(model, QuantType.QInt8, activation_type)
        quantizer = QDQQuantizer(
            model, per_channel, reduce_range, QuantType.QInt8, activation_type,
            _tensors_data(ranges),  # fresh object: ORT mutates it (Relu/Clip input ranges)
            [], list(nodes_to_exclude), list(op_types), {},
        )
        quantizer.quantize_model()
    except (BuildError, UsageError):
        raise
    except Exception as exc:
        raise BuildError(f"ONNX Runtime QDQ quantization failed: {exc}") from exc
    excluded = set(nodes_to_exclude)
    float_reads_float(quantizer.model.model, lambda n: n.op_type in op_types and n.name not in excluded,
                      made_by)
    quantizer.model.remove_unused_constant()
    with atomic_path(out_path) as tmp:
        quantizer.model.save_model_to_file(str(tmp), False)


def convert_fp16(fp32_model_path: str | Path, out_path: str | Path) -> None:
    """Write an fp16 copy of the model (weights and compute) keeping fp32 inputs and outputs.

    Uses ONNX Runtime's ``onnxruntime.transformers.float16`` converter (``keep_io_types=True``).
    """
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = load_model(fp32_model_path)
    try:
        half = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
    except Exception as exc:
        raise BuildError(f"fp16 conversion failed: {exc}") from exc
    _drop_duplicate_nodes(half)
    _sort_topologically(half)
    save_checked(half, out_path, "fp16 conversion")


def save_checked(model: onnx.ModelProto, out_path: str | Path, made_by: str) -> None:
    """Write ``model`` to ``out_path`` atomically once ``onnx.checker`` accepts it; otherwise raise
    BuildError saying ``made_by`` made an invalid model (nothing is written)."""
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise BuildError(f"{made_by} made an invalid model: {exc}") from exc
    with atomic_path(out_path) as tmp:
        onnx.save_model(model, str(tmp))


def _sort_topologically(model: onnx.ModelProto) -> None:
    """Order the nodes so each comes after the producers of its inputs (the converter appends the
    Casts it inserts at the end; ONNX Runtime sorts on load, ``onnx.checker`` and other tools do
    not), with ONNX Runtime's own sort. Edits ``model`` in place; BuildError if it is not a DAG."""
    from onnxruntime.quantization.onnx_model import ONNXModel

    try:
        ONNXModel(model).topological_sort()
    except AssertionError as exc:
        raise BuildError(f"fp16 conversion made a graph that cannot be sorted: {exc}") from exc


def _drop_duplicate_nodes(model: onnx.ModelProto) -> int:
    """Remove nodes identical to an earlier one (same name, op, inputs, outputs, attributes).

    ORT's float16 converter inserts one Cast back to float32 per reader of a tensor that feeds an op
    it keeps in float32 (e.g. Resize), named after the tensor: a Constant read by two Resize nodes
    (the RRDBNet upsampler) gets two identical Cast nodes, a model ONNX Runtime refuses to load.
    Edits ``model`` in place; returns how many nodes were removed."""
    seen: set[bytes] = set()
    keep = []
    for node in model.graph.node:
        key = node.SerializeToString(deterministic=True)
        if key not in seen:
            seen.add(key)
            keep.append(node)
    removed = len(model.graph.node) - len(keep)
    if removed:
        del model.graph.node[:]
        model.graph.node.extend(keep)
    return removed
