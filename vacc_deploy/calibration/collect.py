"""Stream the activations of a fixed-shape ONNX model: one forward pass per calibration image.

Which tensors are calibrated mirrors ONNX Runtime's calibrators
(``CalibraterBase.select_tensors_to_calibrate``): every float/float16 input and output of every node
whose op type is quantized, except initializers. Those are the tensors ORT's QDQ quantizer asks
ranges for.

One pass, bounded memory: the model runs as a chain of consecutive segments
(:mod:`vacc_deploy.calibration.segments`, cut under ``max_bytes`` of fp32 tensors from onnx shape
inference), each its own ORT session returning its calibrated tensors and the tensors later
segments read. Each image goes through the chain once; a segment's calibrated tensors are visited
(as views of ORT's buffers, no copy) and dropped before the next segment runs, handed-over tensors
once no later segment reads them. So the peak is one image plus the largest segment plus what the
visitor holds (:func:`~vacc_deploy.calibration.calibrate` holds one segment's tensors while the next one
runs: two segments), whatever the model's size or the number of images. The sessions share one
process-wide ORT arena (``session.use_env_allocators``, extend strategy "same as requested"), so
memory freed by one segment is reused by the next instead of page-faulted in again every run; it
stays reserved by the process after calibration.

Graph optimizations: ``ORT_ENABLE_ALL`` by default, the level of the fp32 inference session (its
NCHWc convolutions are what make ORT fast on AVX2: on lesrcnn_x2, 2-core AVX2 EPYC, interleaved on
a loaded machine, the chain of sessions took 1.18-1.25x the CPU time at ORT_ENABLE_EXTENDED that it
took at ENABLE_ALL; exposing the calibrated tensors costs ENABLE_ALL a layout reorder each, 6-10 %
CPU over the plain inference session). Its tensors are not bit-identical to ORT_DISABLE_ALL (what ORT's
own calibrators use): the NCHWc kernels sum in another order. Measured with every calibrated tensor
a graph output (ORT 1.32): at most 9.1e-7 of the tensor's largest magnitude on lesrcnn_x2
(128x128, 3 images), at most 5.2e-6 on bicubic_pp_x3 (1080x1920, 2 images), and each tensor's
min / max within 4e-7 of it relative: about 1/100 of a final histogram bin (1/2048 of the
range), so the bounds of :mod:`vacc_deploy.calibration.stats` hold with it (a value moves across a
final edge only from within that distance of it) and ``max`` ranges are that close to ORT's.
``exact=True`` (``calibrate(..., ort_compat=True)``) uses ``ORT_ENABLE_EXTENDED`` instead: BASIC and
EXTENDED gave tensors bit-identical to ORT_DISABLE_ALL (tests/calibration/test_vs_ort.py checks ours
against ORT's calibrators) on lesrcnn_x2 (both) and bicubic_pp_x3 (EXTENDED).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import onnx
from onnx import TensorProto

from vacc_deploy.errors import BuildError, UsageError
from vacc_deploy.calibration.segments import Segment, plan_groups, plan_segments, segment_model  # noqa: F401 (plan_groups: evaluation.analysis)
from vacc_deploy.calibration.sessions import segment_session
from vacc_deploy.calibration.stats import HistogramKind, derivable

log = logging.getLogger(__name__)

#: Op types quantized by default: what super-resolution networks are made of and ORT's QDQ
#: quantizer supports (it ignores types it has no QDQ handler for).
DEFAULT_OP_TYPES: tuple[str, ...] = (
    "Conv", "ConvTranspose", "Add", "Mul", "Relu", "LeakyRelu", "Clip", "Sigmoid",
    "Concat", "Resize", "DepthToSpace", "MatMul", "Gemm",
)

#: The op types an int8 build quantizes, by name (``--int8-ops``). ``compute``: the layers that carry
#: the arithmetic (Conv, ConvTranspose, MatMul, Gemm) and the activations ORT folds into their output
#: range (Relu, Clip); element-wise ops (Add, Mul, LeakyRelu, Concat, DepthToSpace, Resize) stay
#: float, so residual sums and leaky activations are not rounded to uint8 again. ``all``: every type
#: of :data:`DEFAULT_OP_TYPES` (fully int8 chains; more rounding). Measured in docs/accuracy.md.
INT8_OP_SETS: dict[str, tuple[str, ...]] = {
    "compute": ("Conv", "ConvTranspose", "MatMul", "Gemm", "Relu", "Clip"),
    "all": DEFAULT_OP_TYPES,
}

DEFAULT_MAX_BYTES_PER_RUN = 1_500_000_000  # evaluation.analysis's runs (grouped by plan_groups)

#: the fp32 bytes one calibration segment may hold (inputs, outputs, largest internal tensor), as
#: planned; at ORT_ENABLE_ALL an exposed tensor also exists in NCHWc layout while its segment runs,
#: so the real peak is larger: edsr_x2 (256x256) peaked at 2330 MB with 384 MB (36 segments, 3
#: images), 1504 MB with 256 MB (103 segments, 1 image)
DEFAULT_SEGMENT_BYTES = 256_000_000

_FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.FLOAT16}

Visitor = Callable[[str, np.ndarray], None]


@runtime_checkable
class CalibrationSource(Protocol):
    """Calibration images: ``len()`` and re-iterable, each item one (1, C, H, W) float32 array.

    Iterating must start afresh every time (:func:`~vacc_deploy.calibration.calibrate` iterates once).
    """

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[np.ndarray]: ...


class ArraySource:
    """A :class:`CalibrationSource` over an (N, C, H, W) array (e.g. an ``.npy`` memmap) or a list
    of (1, C, H, W) arrays. A memmap is read one image at a time."""

    def __init__(self, arrays: Sequence[np.ndarray] | np.ndarray) -> None:
        self._arrays = arrays

    def __len__(self) -> int:
        return len(self._arrays)

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self._arrays)):
            item = np.asarray(self._arrays[i])
            yield item[None] if item.ndim == 3 else item


class CallableSource:
    """A :class:`CalibrationSource` from a factory returning a fresh iterator of (1, C, H, W) arrays
    and the number of images it yields (e.g. images decoded from files on disk, one at a time)."""

    def __init__(self, factory: Callable[[], Iterable[np.ndarray]], length: int) -> None:
        self._factory = factory
        self._length = length

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self._factory())


def _value_infos(model: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    infos = {vi.name: vi for vi in model.graph.value_info}
    infos.update({vi.name: vi for vi in model.graph.output})
    infos.update({vi.name: vi for vi in model.graph.input})
    return infos


def infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return ``model`` with value_info filled by onnx shape inference (raises BuildError)."""
    try:
        return onnx.shape_inference.infer_shapes(model)
    except Exception as exc:  # onnx raises several types
        raise BuildError(f"onnx shape inference failed: {exc}") from exc


def select_tensors(model: onnx.ModelProto, op_types: Sequence[str] | None) -> list[str]:
    """Names of the tensors to calibrate, in graph order, as ORT's calibrators choose them.

    ``model`` must carry shape-inferred value_info. ``op_types`` None or empty means every node.
    """
    infos = _value_infos(model)
    inits = {init.name for init in model.graph.initializer}
    wanted = set(op_types or ())
    names: dict[str, None] = {}
    for node in model.graph.node:
        if wanted and node.op_type not in wanted:
            continue
        for name in (*node.input, *node.output):
            vi = infos.get(name)
            if vi is None or name in inits or not vi.type.HasField("tensor_type"):
                continue
            if vi.type.tensor_type.elem_type in _FLOAT_TYPES:
                names[name] = None
    return list(names)


def derived_tensors(model: onnx.ModelProto, names: Sequence[str], kind: HistogramKind | None) -> dict[str, tuple[str, str]]:
    """Tensors of ``names`` whose statistics follow from another tensor of ``names`` (the output of a
    permutation, or of a Relu for signed histograms; see :meth:`TensorStats.derived`): name ->
    (source, op type). They need not be scanned."""
    wanted = set(names)
    out: dict[str, tuple[str, str]] = {}
    for node in model.graph.node:
        if (len(node.output) == 1 and node.output[0] in wanted and node.input and node.input[0] in wanted
                and derivable(node.op_type, kind)):
            out[node.output[0]] = (node.input[0], node.op_type)
    return out


def tensor_nbytes(model: onnx.ModelProto, name: str) -> int | None:
    """fp32 size in bytes of tensor ``name`` from its inferred shape, None when not static."""
    vi = _value_infos(model).get(name)
    if vi is None or not vi.type.tensor_type.HasField("shape"):
        return None
    count = 1
    for dim in vi.type.tensor_type.shape.dim:
        if not dim.HasField("dim_value"):
            return None
        count *= dim.dim_value
    return 4 * count


def model_input_name(model: onnx.ModelProto) -> str:
    """The single non-initializer graph input (SR models take one image); BuildError otherwise."""
    inits = {init.name for init in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise BuildError(f"calibration expects a model with exactly one input, got {inputs}")
    return inputs[0]


def _checked(image: np.ndarray, index: int) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 4 or arr.shape[0] != 1:
        raise UsageError(f"calibration image {index} has shape {arr.shape}, expected (1, C, H, W)")
    return np.ascontiguousarray(arr, dtype=np.float32)


@dataclass
class Chain:
    """The model as consecutive segments, each with its ORT session; ``input_name``: the model's input."""

    input_name: str
    segments: list[tuple[Segment, Any]]


def open_chain(model: onnx.ModelProto, names: Sequence[str], max_bytes: int = DEFAULT_SEGMENT_BYTES,
               exact: bool = False) -> Chain:
    """Plan the segments of ``model`` (shape-inferred) for tensors ``names`` under ``max_bytes`` and
    open one ORT session per segment that returns something (``exact``: the optimization level whose
    values are bit-identical to ORT's calibrators', see module). The chain does not keep ``model``."""
    import onnx.utils

    input_name = model_input_name(model)
    sizes = {n: tensor_nbytes(model, n) for n in _value_infos(model)}
    planned = plan_segments(model, sizes, [n for n in names if n != input_name], max_bytes)
    extractor = onnx.utils.Extractor(model)
    return Chain(input_name, [(seg, segment_session(segment_model(extractor, seg), exact)) for seg in planned if seg.outputs])


def stream_chain(
    chain: Chain,
    names: Sequence[str],
    source: CalibrationSource,
    visit: Visitor,
    tick: Callable[[], None] = lambda: None,
    before_visits: Callable[[], None] = lambda: None,
) -> int:
    """Run each image of ``source`` once through ``chain``, calling ``visit(name, array)`` for every
    tensor of ``names`` as its segment returns it (``before_visits()`` first); we drop a tensor once
    visited (the visitor may hold it longer), a handed-over tensor once no later segment reads it.
    Returns the number of images.
    """
    from onnxruntime import OrtValue

    count = 0
    for index, image in enumerate(source):
        feed = _checked(image, index)
        if chain.input_name in names:
            visit(chain.input_name, feed)
        values = {chain.input_name: OrtValue.ortvalue_from_numpy(feed)}
        for seg, sess in chain.segments:
            try:
                outputs = sess.run_with_ort_values(list(seg.outputs), {n: values[n] for n in seg.inputs})
            except Exception as exc:
                raise BuildError(f"onnxruntime failed on calibration image {index}: {exc}") from exc
            values.update(zip(seg.outputs, outputs))
            del outputs
            before_visits()
            for name in seg.calibrated:
                visit(name, values[name].numpy())  # a view: no copy
            for name in seg.release:
                values.pop(name, None)
        count += 1
        tick()
    return count
