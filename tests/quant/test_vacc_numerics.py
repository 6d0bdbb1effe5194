"""The ``vacc`` int8 numerics profile on tiny graphs, against hand-computed int8 arithmetic.

Every expected value is written out from the TVM rule it checks (scale = threshold / 128, codes
clipped to +-127, power-of-two weight thresholds, per-channel weights, a float conv, int32 adds and
concats), then compared with what ONNX Runtime computes on the emulated QDQ model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from vacc_deploy.errors import UsageError
from vacc_deploy.backends.ort.vacc_numerics import (
    emulate, quantize_vacc, quantize_weight, tvm_conv_order, weight_threshold,
)


def _conv(name: str, x: str, w: np.ndarray, out: str, bias: np.ndarray | None = None):
    inits = [numpy_helper.from_array(np.asarray(w, np.float32).reshape(len(w), -1, 1, 1), f"{name}_w")]
    ins = [x, f"{name}_w"]
    if bias is not None:
        inits.append(numpy_helper.from_array(np.asarray(bias, np.float32), f"{name}_b"))
        ins.append(f"{name}_b")
    return helper.make_node("Conv", ins, [out], name=name), inits


def _model(nodes, inits, cin: int, cout: int, n: int = 4) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, 1, n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, 1, n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _run(model: onnx.ModelProto, thresholds: dict, x: np.ndarray, **kw) -> np.ndarray:
    opts = {"weight_scale": "power2", "per_channel": False, "float_convs": ()} | kw
    out, _ = emulate(model, thresholds, **opts)
    onnx.checker.check_model(out)
    sess = ort.InferenceSession(out.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x.astype(np.float32)})[0]


def _q(v: float, s: float) -> float:
    """Hand rule: the int8 value of v at scale s (round half away from zero, clip to +-127)."""
    code = np.sign(v) * np.floor(abs(v) / s + 0.5)
    return float(np.clip(code, -127, 127) * s)


def test_symmetric_activation_scale_is_threshold_over_128_clipped_to_127():
    node, inits = _conv("c", "x", [0.75], "y")
    x = np.array([0.3, 1.0, -0.5, -2.0]).reshape(1, 1, 1, 4)
    y = _run(_model([node], inits, 1, 1), {"x": 1.0}, x).ravel()
    # scale 1/128: 0.3 -> 38/128; 1.0 -> 128 -> clipped to 127; -0.5 -> -64; -2.0 -> -127.
    # weight 0.75, power2: threshold 1.0, scale 1/128, code 96: exact.
    expected = np.array([38, 127, -64, -127]) / 128 * 0.75
    np.testing.assert_allclose(y, expected, rtol=1e-6)


@pytest.mark.parametrize("mode, w_value", [("power2", 96 / 128), ("max", 0.75 * 127 / 128)])
def test_weight_scale_power2_and_max(mode, w_value):
    node, inits = _conv("c", "x", [0.75], "y")
    x = np.full((1, 1, 1, 4), 0.5)
    y = _run(_model([node], inits, 1, 1), {"x": 1.0}, x, weight_scale=mode).ravel()
    # max: threshold 0.75, scale 0.75/128, 0.75 -> 128 -> clipped to 127. power2: threshold 1.0, code 96.
    np.testing.assert_allclose(y, 0.5 * w_value, rtol=1e-6)


def test_power2_threshold_rounds_up_to_a_power_of_two():
    w = np.array([[0.3], [0.02], [0.0]])
    np.testing.assert_allclose(weight_threshold(w, "power2", True), [0.5, 0.03125, 1.0])
    np.testing.assert_allclose(weight_threshold(w, "power2", False), 0.5)
    np.testing.assert_allclose(weight_threshold(w, "max", True), [0.3, 0.02, 1.0])
    codes, scale = quantize_weight(w, "power2", False)
    assert codes.dtype == np.int8 and codes.ravel().tolist() == [77, 5, 0]  # 0.3*256=76.8, 0.02*256=5.12
    with pytest.raises(UsageError):
        weight_threshold(w, "mean", False)


@pytest.mark.parametrize("per_channel", [False, True])
def test_per_channel_weights(per_channel):
    node, inits = _conv("c", "x", [0.5 - 1e-3, 0.02], "y")
    x = np.ones((1, 1, 1, 4))
    y = _run(_model([node], inits, 1, 2), {"x": 2.0}, x, per_channel=per_channel)
    # x = 1.0 at scale 2/128 is exact. Channel 1 (0.02): per tensor, threshold 0.5 -> scale 1/256,
    # 0.02 -> 5.12 -> 5/256; per channel, threshold 2**-5 -> scale 2**-12, 0.02 -> 81.92 -> 82/4096.
    ch0 = _q(0.499, 0.5 / 128)
    ch1 = 82 / 4096 if per_channel else 5 / 256
    np.testing.assert_allclose(y[0, :, 0, 0], [ch0, ch1], rtol=1e-6)


def test_skipped_conv_stays_float_and_the_next_conv_quantizes_its_output():
    c0, i0 = _conv("c0", "x", [0.3], "t")
    c1, i1 = _conv("c1", "t", [0.4], "y")
    model = _model([c0, c1], i0 + i1, 1, 1)
    x = np.array([0.7, 0.1, 0.9, 0.33]).reshape(1, 1, 1, 4)
    th = {"x": 1.0, "t": 0.3}
    y = _run(model, th, x, float_convs=("c0",)).ravel()
    # c0 float: t = 0.3 x exactly; c1 quantizes t at 0.3/128 and its weight 0.4 (threshold 0.5: 102/256).
    expected = [_q(0.3 * v, 0.3 / 128) * 102 / 256 for v in x.ravel()]
    np.testing.assert_allclose(y, expected, rtol=1e-5)
    y_all = _run(model, th, x).ravel()
    # Not skipped: x is rounded at 1/128 and 0.3 becomes 77/256 (threshold 0.5) before t is rounded.
    expected_all = [_q(_q(v, 1 / 128) * 77 / 256, 0.3 / 128) * 102 / 256 for v in x.ravel()]
    np.testing.assert_allclose(y_all, expected_all, rtol=1e-5)


@pytest.mark.parametrize("order", ["t1_first", "t2_first"])
def test_add_of_differently_scaled_inputs_rounds_only_the_second(order):
    c1, i1 = _conv("c1", "x", [0.3], "t1")
    c2, i2 = _conv("c2", "x", [0.7], "t2")
    ins = ["t1", "t2"] if order == "t1_first" else ["t2", "t1"]
    add = helper.make_node("Add", ins, ["y"], name="add")
    x = np.full((1, 1, 1, 4), 1.0)
    y = _run(_model([c1, c2, add], i1 + i2, 1, 1), {"x": 2.0, "t1": 6.0, "t2": 7.0}, x).ravel()
    t1, t2 = 77 / 256, 90 / 128  # int32 conv results: x exact, weights 0.3 -> 77/256, 0.7 -> 90/128
    # The first input stays at its int32 scale; the second is requantized to int8 at threshold / 128.
    expected = t1 + _q(t2, 7.0 / 128) if order == "t1_first" else t2 + _q(t1, 6.0 / 128)
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    assert abs(_q(t2, 7.0 / 128) - t2) > 1e-3 and abs(_q(t1, 6.0 / 128) - t1) > 1e-3  # the rule matters


def test_concat_of_differently_scaled_inputs_is_rounded_once_at_its_own_threshold():
    c1, i1 = _conv("c1", "x", [0.3], "t1")
    c2, i2 = _conv("c2", "x", [0.7], "t2")
    cat = helper.make_node("Concat", ["t1", "t2"], ["t3"], name="cat", axis=1)
    c3 = helper.make_node("Conv", ["t3", "c3_w"], ["y"], name="c3")  # one output channel reading both
    i3 = [numpy_helper.from_array(np.array([0.25, 0.375], np.float32).reshape(1, 2, 1, 1), "c3_w")]
    x = np.full((1, 1, 1, 4), 1.0)
    y = _run(_model([c1, c2, cat, c3], i1 + i2 + i3, 1, 1), {"x": 2.0, "t1": 0.4, "t2": 6.0, "t3": 5.0}, x).ravel()
    # Concat rescales both int32 inputs to a common scale (no 8-bit rounding at t1's 0.4/128 or t2's
    # 6/128); c3 then quantizes the concatenation at t3's threshold 5.0 (scale 5/128). Its weights
    # (threshold 0.5, scale 1/256) are exact: 64/256 and 96/256.
    t1, t2 = 77 / 256, 90 / 128
    expected = _q(t1, 5 / 128) * 0.25 + _q(t2, 5 / 128) * 0.375
    assert abs(_q(t1, 0.4 / 128) - _q(t1, 5 / 128)) > 1e-3  # rounding t1 at its own scale would differ
    np.testing.assert_allclose(y, expected, rtol=1e-6)


def test_bias_is_an_int8_weight_and_leaky_relu_stays_float(tmp_path: Path):
    c, i = _conv("c", "x", [0.5 - 1e-3], "t", bias=[0.3])
    lrelu = helper.make_node("LeakyRelu", ["t"], ["y"], name="lrelu", alpha=0.5)
    model = _model([c, lrelu], i, 1, 1)
    onnx.save(model, str(tmp_path / "m.onnx"))
    summary = quantize_vacc(tmp_path / "m.onnx", tmp_path / "q.onnx", {"x": (-1.0, 1.0)},
                            weight_scale="power2", per_channel=False, float_convs=())
    assert summary["float_op_types"] == ["LeakyRelu"] and summary["int8_activations"] == 1
    sess = ort.InferenceSession(str(tmp_path / "q.onnx"), providers=["CPUExecutionProvider"])
    x = np.array([-1.0, -0.5, 0.25, 0.8]).reshape(1, 1, 1, 4).astype(np.float32)
    y = sess.run(None, {"x": x})[0].ravel()
    # bias 0.3 as a WEIGHT: threshold 0.5, 0.3 * 256 = 76.8 -> 77/256; LeakyRelu in float on the sum.
    t = np.array([_q(v, 1 / 128) for v in x.ravel()]) * _q(0.499, 1 / 256) + 77 / 256
    np.testing.assert_allclose(y, np.where(t > 0, t, 0.5 * t), rtol=1e-6)


def test_tvm_conv_order_visits_the_first_argument_first():
    # Graph order: cb (second Add input) is listed before ca; TVM counts ca first (first argument).
    cb, ib = _conv("cb", "x", [0.5], "tb")
    ca, ia = _conv("ca", "x", [0.5], "ta")
    add = helper.make_node("Add", ["ta", "tb"], ["y"], name="add")
    assert tvm_conv_order(_model([cb, ca, add], ib + ia, 1, 1)) == ["ca", "cb"]


def test_unknown_float_conv_and_missing_threshold_are_errors():
    from vacc_deploy.errors import BuildError

    node, inits = _conv("c", "x", [0.5], "y")
    with pytest.raises(UsageError):
        emulate(_model([node], inits, 1, 1), {"x": 1.0}, weight_scale="max", per_channel=False, float_convs=("nope",))
    with pytest.raises(BuildError):
        emulate(_model([node], inits, 1, 1), {}, weight_scale="max", per_channel=False, float_convs=())
