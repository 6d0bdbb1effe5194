"""Channel spaces and cross-layer equalization (vacc_deploy.backends.ort.equalize)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from vacc_deploy.backends.ort.equalize import apply_scales, channel_spaces


def _dense_block(tail_op: str = "Conv") -> onnx.ModelProto:
    """x(1,3,12,12) -> c0 (8) = s0; g = LeakyRelu(c1(s0)) (4); c2(Concat(s0, g)) (8) + s0 = s1;
    Mul(s1, 0.2) -> Resize x2 -> c3 (3) -> y. ``tail_op`` "Add" adds a constant before c3 instead."""
    rng = np.random.default_rng(0)

    def w(name, o, i, k=3):
        return numpy_helper.from_array((rng.standard_normal((o, i, k, k)) * 0.3).astype(np.float32), name)

    def b(name, o):
        return numpy_helper.from_array((rng.standard_normal(o) * 0.1).astype(np.float32), name)

    inits = [w("w0", 8, 3), b("b0", 8), w("w1", 4, 8), b("b1", 4), w("w2", 8, 12), b("b2", 8), w("w3", 3, 8),
             numpy_helper.from_array(np.array(0.2, np.float32), "k"),
             numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "sc")]
    pad = {"pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Conv", ["x", "w0", "b0"], ["s0"], name="c0", **pad),
        helper.make_node("Conv", ["s0", "w1", "b1"], ["a1"], name="c1", **pad),
        helper.make_node("LeakyRelu", ["a1"], ["g"], name="lrelu", alpha=0.2),
        helper.make_node("Concat", ["s0", "g"], ["cat"], name="cat", axis=1),
        helper.make_node("Conv", ["cat", "w2", "b2"], ["a2"], name="c2", **pad),
        helper.make_node("Add", ["a2", "s0"], ["s1"], name="res"),
        helper.make_node("Mul", ["s1", "k"], ["m"], name="mul"),
        helper.make_node("Resize", ["m", "", "sc"], ["u"], name="up", mode="nearest"),
    ]
    if tail_op == "Add":
        inits.append(numpy_helper.from_array(np.full((1, 8, 1, 1), 0.5, np.float32), "cst"))
        nodes.append(helper.make_node("Add", ["u", "cst"], ["u2"], name="bias_add"))
    nodes.append(helper.make_node("Conv", ["u2" if tail_op == "Add" else "u", "w3"], ["y"], name="c3", **pad))
    graph = helper.make_graph(nodes, "dense", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 12, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 24, 24])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def test_spaces_of_a_dense_residual_block():
    spaces = channel_spaces(_dense_block())
    by_producers = {tuple(sorted(s.producers)): s for s in spaces.values()}
    assert set(by_producers) == {("c0", "c2"), ("c1",)}
    stream, growth = by_producers[("c0", "c2")], by_producers[("c1",)]
    assert stream.channels == 8 and sorted(stream.consumers) == [("c1", 0), ("c2", 0), ("c3", 0)]
    assert growth.channels == 4 and growth.consumers == [("c2", 8)]
    assert ("cat", 8) in growth.tensors and ("cat", 0) in stream.tensors and ("u", 0) in stream.tensors


def test_a_constant_add_or_a_graph_output_stops_a_space():
    spaces = channel_spaces(_dense_block(tail_op="Add"))
    assert [sorted(s.producers) for s in spaces.values()] == [["c1"]]  # the stream meets a constant
    model = _dense_block()
    model.graph.output.append(helper.make_tensor_value_info("g", TensorProto.FLOAT, [1, 4, 12, 12]))
    assert [sorted(s.producers) for s in channel_spaces(model).values()] == [["c0", "c2"]]


def test_scaling_keeps_the_function_and_changes_the_ranges():
    model = _dense_block()
    x = np.random.default_rng(1).random((1, 3, 12, 12), dtype=np.float32)
    ref = _run(model, x)
    spaces = channel_spaces(model)
    rng = np.random.default_rng(2)
    alphas = {k: rng.uniform(0.2, 5.0, s.channels) for k, s in spaces.items()}
    # stream: c0, c2 rows (weight and bias) and c1, c2, c3 columns; growth: c1 rows (2) and c2 columns
    assert apply_scales(model, spaces, alphas) == 4 + 3 + 2 + 1
    got = _run(model, x)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())
    w1 = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "w1"))
    assert not np.allclose(w1, numpy_helper.to_array(next(t for t in _dense_block().graph.initializer
                                                              if t.name == "w1")))


def test_scales_must_be_positive_and_match_the_width():
    model = _dense_block()
    spaces = channel_spaces(model)
    sid = next(iter(spaces))
    with pytest.raises(ValueError, match="positive"):
        apply_scales(model, spaces, {sid: -np.ones(spaces[sid].channels)})
    with pytest.raises(ValueError, match="positive"):
        apply_scales(model, spaces, {sid: np.ones(spaces[sid].channels + 1)})
