"""Tiny ONNX graphs shared by the calibration, ONNX Runtime backend, evaluation and report tests (built with
onnx.helper, no torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _save(nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], x_shape: list[int], y_shape: list[int],
          path: Path) -> Path:
    """An opset-17 model of ``nodes`` with float input ``x`` and output ``y`` of these shapes, checked
    with ``onnx.checker`` and saved at ``path``."""
    graph = helper.make_graph(nodes, path.stem, [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def conv_relu_conv_add(path: Path, seed: int = 0) -> Path:
    """x(1,3,16,16) -> Conv c1 (8ch) -> Relu -> Conv c2 (3ch) -> Add(x) -> y. Saved at ``path``."""
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32), "w1"),
        numpy_helper.from_array((rng.standard_normal(8) * 0.1).astype(np.float32), "b1"),
        numpy_helper.from_array((rng.standard_normal((3, 8, 3, 3)) * 0.2).astype(np.float32), "w2"),
        numpy_helper.from_array((rng.standard_normal(3) * 0.1).astype(np.float32), "b2"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["t1"], name="c1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["t1"], ["t2"], name="r1"),
        helper.make_node("Conv", ["t2", "w2", "b2"], ["t3"], name="c2", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["t3", "x"], ["y"], name="add"),
    ]
    return _save(nodes, inits, [1, 3, 16, 16], [1, 3, 16, 16], path)


def random_inputs(n: int = 10, seed: int = 1) -> list[np.ndarray]:
    """``n`` random (1,3,16,16) float32 images in [0, 1)."""
    rng = np.random.default_rng(seed)
    return [rng.random((1, 3, 16, 16), dtype=np.float32) for _ in range(n)]


def sr_like(path: Path, seed: int = 0) -> Path:
    """x(1,3,16,16) -> Conv(12) -> LeakyRelu -> Mul(0.5) -> DepthToSpace(2) -> Add(Resize(x)) -> y."""
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array((rng.standard_normal((12, 3, 3, 3)) * 0.3).astype(np.float32), "w"),
        numpy_helper.from_array(np.array(0.5, np.float32), "k"),
        numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "sc"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["a"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("LeakyRelu", ["a"], ["b"], name="lrelu", alpha=0.2),
        helper.make_node("Mul", ["b", "k"], ["c"], name="mul"),
        helper.make_node("DepthToSpace", ["c"], ["d"], name="d2s", blocksize=2),
        helper.make_node("Resize", ["x", "", "sc"], ["u"], name="up", mode="nearest"),
        helper.make_node("Add", ["d", "u"], ["y"], name="add"),
    ]
    return _save(nodes, inits, [1, 3, 16, 16], [1, 3, 32, 32], path)


def two_resizes_one_scales(path: Path, seed: int = 0) -> Path:
    """x(1,3,8,8) -> Resize x2 (nearest) -> Conv (3ch) -> Resize x2 -> y(1,3,32,32); both Resize nodes
    read one Constant node's scales, as a traced RRDBNet upsampler does after onnxsim. Saved at ``path``."""
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array((rng.standard_normal((3, 3, 3, 3)) * 0.3).astype(np.float32), "w"),
             numpy_helper.from_array(np.zeros(3, np.float32), "b")]
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales_value")
    nodes = [
        helper.make_node("Constant", [], ["/Constant_output_0"], name="/Constant", value=scales),
        helper.make_node("Resize", ["x", "", "/Constant_output_0"], ["u1"], name="up1", mode="nearest"),
        helper.make_node("Conv", ["u1", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Resize", ["c", "", "/Constant_output_0"], ["y"], name="up2", mode="nearest"),
    ]
    return _save(nodes, inits, [1, 3, 8, 8], [1, 3, 32, 32], path)
