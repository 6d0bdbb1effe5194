"""Stream the activations of a fixed-shape ONNX model, one calibration image at a time.

Which tensors are calibrated mirrors ONNX Runtime's calibrators
(``CalibraterBase.select_tensors_to_calibrate``): every float/float16 input and output of every node
whose op type is quantized, except initializers. Those are the tensors ORT's QDQ quantizer asks
ranges for.

Memory contract: at any time we hold one calibration image, the outputs of one ORT run (at most
``max_bytes_per_run`` bytes of fp32 activations, from onnx shape inference; a single tensor larger
than the budget runs alone) and whatever the visitor keeps. The tensors are split into groups that fit
the budget; each group gets its own ORT session (an augmented copy of the model exposing that group as
graph outputs) and its own pass over the source. Nothing grows with the number of images.

Measured (30 fp32 tensors of 16 MB, 1x1 convs at 256x256): peak RSS 717 MB with one group (480 MB of
outputs), 412 MB with a 95 MB budget (6 groups), the same for 4 or 12 images; plain inference of that
model peaks at 162 MB. Outputs are fetched as OrtValues and copied to numpy one at a time. Sessions run
with graph optimizations off, like ORT's calibrators (bit-identical activations; layout-optimized
graphs also kept more buffers alive), which can make big convolutions slower.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import onnx
from onnx import TensorProto

from vacc_deploy.errors import BuildError, UsageError

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

DEFAULT_MAX_BYTES_PER_RUN = 1_500_000_000

_FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.FLOAT16}

Visitor = Callable[[str, np.ndarray], None]


@runtime_checkable
class CalibrationSource(Protocol):
    """Calibration images: ``len()`` and re-iterable, each item one (1, C, H, W) float32 array.

    Iterating must start afresh every time (statistics take up to two passes per tensor group).
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


def plan_groups(sizes: dict[str, int | None], max_bytes: int) -> list[list[str]]:
    """Split tensor names (in order) into groups whose summed size is at most ``max_bytes``.

    A tensor of unknown size (None) or larger than the budget gets a group of its own.
    """
    groups: list[list[str]] = []
    current: list[str] = []
    used = 0
    for name, size in sizes.items():
        if size is None or size > max_bytes:
            if size is None:
                log.warning("size of %s unknown: calibrating it in a run of its own", name)
            groups.append([name])
            continue
        if current and used + size > max_bytes:
            groups.append(current)
            current, used = [], 0
        current.append(name)
        used += size
    if current:
        groups.append(current)
    return groups


def augment_model(model: onnx.ModelProto, names: Sequence[str]) -> onnx.ModelProto:
    """Copy of ``model`` whose graph outputs are exactly ``names`` (unused nodes stay; ORT prunes)."""
    infos = _value_infos(model)
    aug = onnx.ModelProto()
    aug.CopyFrom(model)
    del aug.graph.output[:]
    for name in names:
        vi = onnx.ValueInfoProto()
        vi.CopyFrom(infos[name])
        aug.graph.output.append(vi)
    return aug


def model_input_name(model: onnx.ModelProto) -> str:
    """The single non-initializer graph input (SR models take one image); BuildError otherwise."""
    inits = {init.name for init in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise BuildError(f"calibration expects a model with exactly one input, got {inputs}")
    return inputs[0]


def _session(model: onnx.ModelProto):  # -> onnxruntime.InferenceSession
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.enable_cpu_mem_arena = False  # give activation buffers back between runs
    opts.log_severity_level = 3
    # as ORT's calibrators do; also keeps fewer buffers alive than layout-optimized graphs
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        return ort.InferenceSession(
            model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        raise BuildError(f"onnxruntime cannot load the calibration model: {exc}") from exc


def _checked(image: np.ndarray, index: int) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 4 or arr.shape[0] != 1:
        raise UsageError(f"calibration image {index} has shape {arr.shape}, expected (1, C, H, W)")
    return np.ascontiguousarray(arr, dtype=np.float32)


def stream_group(
    model: onnx.ModelProto,
    names: Sequence[str],
    source: CalibrationSource,
    visit: Visitor,
    tick: Callable[[], None] = lambda: None,
) -> int:
    """Run the model once per image of ``source``, calling ``visit(name, array)`` for every tensor
    of ``names``; the arrays are dropped once visited. Returns the number of images seen.
    """
    from onnxruntime import OrtValue

    input_name = model_input_name(model)
    run_names = [n for n in names if n != input_name]
    sess = _session(augment_model(model, run_names)) if run_names else None
    count = 0
    for index, image in enumerate(source):
        feed = _checked(image, index)
        if input_name in names:
            visit(input_name, feed)
        if sess is not None:
            try:  # OrtValues: each is copied to numpy only while it is visited, then released
                fed = {input_name: OrtValue.ortvalue_from_numpy(feed)}
                outputs = list(sess.run_with_ort_values(run_names, fed))
            except Exception as exc:
                raise BuildError(f"onnxruntime failed on calibration image {index}: {exc}") from exc
            for i, name in enumerate(run_names):
                visit(name, outputs[i].numpy())
                outputs[i] = None
        count += 1
        tick()
    return count
