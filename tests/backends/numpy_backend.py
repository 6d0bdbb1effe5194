"""A backend made only for the tests: a small numpy interpreter of the ONNX operators our LESRCNN
builds use (Conv, Relu, Add, DepthToSpace, Cast, QuantizeLinear, DequantizeLinear). It computes the
model for real, independently of every runtime, and is registered with one dict entry by
``test_contract.py`` to show that registration alone brings a backend under the contract suite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from numpy.lib.stride_tricks import sliding_window_view
from onnx import numpy_helper

from vacc_deploy.backends import BuiltModel, OnnxBackend, SessionOptions
from vacc_deploy.errors import BuildError


def _conv(x, w, b=None, *, pads=(0, 0, 0, 0), group=1, strides=(1, 1), dilations=(1, 1), **_attrs):
    if group != 1 or tuple(strides) != (1, 1) or tuple(dilations) != (1, 1):
        raise BuildError("numpy backend: only group=1, stride 1, dilation 1 convolutions")
    dtype = x.dtype  # fp16 models: computed in float32, stored in float16
    x = np.pad(x.astype(np.float32), ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    win = sliding_window_view(x, w.shape[2:], axis=(2, 3))  # N, C, H, W, kh, kw
    n, c, h, wd = win.shape[:4]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * h * wd, -1)  # im2col
    y = (cols @ w.reshape(w.shape[0], -1).astype(np.float32).T).reshape(n, h, wd, -1).transpose(0, 3, 1, 2)
    if b is not None:
        y = y + b.astype(np.float32).reshape(1, -1, 1, 1)
    return y.astype(dtype)


def _depth_to_space(x, *, blocksize, mode=b"DCR"):
    n, c, h, w = x.shape
    b = blocksize
    if mode in (b"CRD", "CRD"):
        return x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3).reshape(n, -1, h * b, w * b)
    return x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2).reshape(n, -1, h * b, w * b)


def _per_axis(v, x, axis):
    return v.reshape([-1 if i == axis else 1 for i in range(x.ndim)]) if v.ndim else v


def _dequantize(x, scale, zero=None, *, axis=1):
    zero = np.zeros((), x.dtype) if zero is None else zero
    return ((x.astype(np.float32) - _per_axis(zero, x, axis).astype(np.float32)) * _per_axis(scale, x, axis))


def _quantize(x, scale, zero=None, *, axis=1):
    dtype = np.uint8 if zero is None else zero.dtype
    info = np.iinfo(dtype)
    q = np.rint(x / _per_axis(scale, x, axis)) + (0 if zero is None else _per_axis(zero, x, axis).astype(np.float32))
    return np.clip(q, info.min, info.max).astype(dtype)


OPS = {
    "Conv": _conv, "Relu": lambda x: np.maximum(x, 0), "Add": np.add, "DepthToSpace": _depth_to_space,
    "Cast": lambda x, *, to: x.astype(onnx.helper.tensor_dtype_to_np_dtype(to)),
    "QuantizeLinear": _quantize, "DequantizeLinear": _dequantize,
}


class NumpySession:
    """Runs an ONNX file's graph node by node in numpy (float32 in, float32 out)."""

    def __init__(self, path: Path) -> None:
        model = onnx.load(str(path))
        graph = model.graph
        self._consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self._nodes = list(graph.node)
        missing = sorted({n.op_type for n in self._nodes} - set(OPS))
        if missing:
            raise BuildError(f"{path}: the numpy backend has no {', '.join(missing)}")
        self._input, self._output = graph.input[0].name, graph.output[0].name
        self.input_shape = tuple(d.dim_value for d in graph.input[0].type.tensor_type.shape.dim)

    def run(self, batch: np.ndarray) -> np.ndarray:
        values = dict(self._consts)
        values[self._input] = np.asarray(batch, dtype=np.float32)
        for node in self._nodes:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            attrs.pop("kernel_shape", None)
            args = [values[i] if i else None for i in node.input]
            values[node.output[0]] = OPS[node.op_type](*args, **attrs)
        return values[self._output].astype(np.float32)


class NumpyBackend(OnnxBackend):
    name = "numpy"
    short = "np"
    summary = "numpy interpreter (tests only)"
    artifact = "onnx"

    def unavailable_reason(self) -> str | None:
        return None

    def open(self, built: BuiltModel, options: SessionOptions = SessionOptions()) -> NumpySession:
        if built.onnx_path is None:
            raise BuildError(f"row '{built.row}': no ONNX model was built for the numpy backend")
        return NumpySession(built.onnx_path)
