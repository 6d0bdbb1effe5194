"""The card graph (backends/ort/card_graph.py): identity 1x1 convs become the bias adds they
compute, bit-exactly, and nothing else changes; the vacc numerics and the vacc backend build from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from vacc_deploy.backends.ort.card_graph import card_graph, card_graph_model, identity_convs


def _model(tmp_path: Path) -> onnx.ModelProto:
    """x -> sub_mean (identity 1x1, bias) -> c1 3x3 -> scale (diagonal 1x1, not identity) ->
    plain (identity 1x1, no bias) -> padded (identity 1x1 with pads: not a plain product) ->
    add_mean (identity 1x1, bias) -> y."""
    rng = np.random.default_rng(0)
    eye = np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1)
    inits = [numpy_helper.from_array(eye, "eye"),
             numpy_helper.from_array(np.array([-0.45, -0.44, -0.40], np.float32), "m_neg"),
             numpy_helper.from_array(np.array([0.45, 0.44, 0.40], np.float32), "m_pos"),
             numpy_helper.from_array((rng.standard_normal((3, 3, 3, 3)) * 0.3).astype(np.float32), "w1"),
             numpy_helper.from_array(eye * 2.0, "two")]
    nodes = [helper.make_node("Conv", ["x", "eye", "m_neg"], ["a"], name="sub_mean", kernel_shape=[1, 1]),
             helper.make_node("Conv", ["a", "w1"], ["b"], name="c1", pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["b", "two"], ["c"], name="scale"),
             helper.make_node("Conv", ["c", "eye"], ["d"], name="plain"),
             helper.make_node("Conv", ["d", "eye"], ["e"], name="padded", pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["e", "eye", "m_pos"], ["y"], name="add_mean")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 10, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def test_identity_convs_become_bias_adds_and_the_function_is_bit_identical(tmp_path: Path) -> None:
    model = _model(tmp_path)
    assert identity_convs(model) == ["sub_mean", "plain", "add_mean"]
    rewritten, replaced = card_graph(model)
    assert replaced == ["sub_mean", "plain", "add_mean"]
    ops = {n.name: n.op_type for n in rewritten.graph.node}
    assert ops == {"sub_mean__as_add": "Add", "c1": "Conv", "scale": "Conv", "plain__as_add": "Identity",
                   "padded": "Conv", "add_mean__as_add": "Add"}
    assert [n.output[0] for n in rewritten.graph.node] == [n.output[0] for n in model.graph.node]
    onnx.checker.check_model(rewritten)
    x = np.random.default_rng(1).random((1, 3, 8, 8), dtype=np.float32)
    np.testing.assert_array_equal(_run(rewritten, x), _run(model, x))
    assert "m_neg" not in {t.name for t in rewritten.graph.initializer}  # read by no node any more
    assert identity_convs(rewritten) == [] and card_graph(rewritten)[1] == []


def test_the_rewrite_is_cached_and_a_graph_without_identity_convs_is_its_own(tmp_path: Path) -> None:
    src = tmp_path / "model.onnx"
    onnx.save(_model(tmp_path), str(src))
    path, replaced = card_graph_model(src, tmp_path / "row")
    assert path.parent == tmp_path / "row" / "card_graph" and replaced == ["sub_mean", "plain", "add_mean"]
    stamp = path.stat().st_mtime_ns
    assert card_graph_model(src, tmp_path / "row") == (path, replaced) and path.stat().st_mtime_ns == stamp
    assert card_graph_model(path, tmp_path / "row") == (path, [])
