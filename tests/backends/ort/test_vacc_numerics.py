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


def _grid(v: float, s_from: float, s_to: float) -> float:
    """Hand rule: an int8 value at scale s_from moved onto the finer scale s_to (MulAndDiv: the
    code times s_from / s_to, rounded to the nearest integer)."""
    return float(np.floor(v / s_from * (s_from / s_to) + 0.5) * s_to)


def test_symmetric_activation_scale_is_threshold_over_128_clipped_to_127():
    node, inits = _conv("c", "x", [0.75], "y")
    x = np.array([0.3, 1.0, -0.5, -2.0]).reshape(1, 1, 1, 4)
    y = _run(_model([node], inits, 1, 1), {"x": 1.0, "y": 0.8}, x).ravel()
    # scale 1/128: 0.3 -> 38/128; 1.0 -> 128 -> clipped to 127; -0.5 -> -64; -2.0 -> -127.
    # weight 0.75, power2: threshold 1.0, scale 1/128, code 96: exact. The function's result is a
    # partitioned value: rounded to int8 at y's threshold 0.8 (scale 0.8/128).
    expected = [_q(c / 128 * 0.75, 0.8 / 128) for c in (38, 127, -64, -127)]
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    assert abs(expected[0] - 38 / 128 * 0.75) > 1e-3  # the output rounding matters


@pytest.mark.parametrize("mode, w_value", [("power2", 96 / 128), ("max", 0.75 * 127 / 128)])
def test_weight_scale_power2_and_max(mode, w_value):
    node, inits = _conv("c", "x", [0.75], "y")
    x = np.full((1, 1, 1, 4), 0.5)
    y = _run(_model([node], inits, 1, 1), {"x": 1.0, "y": 0.5}, x, weight_scale=mode).ravel()
    # max: threshold 0.75, scale 0.75/128, 0.75 -> 128 -> clipped to 127. power2: threshold 1.0, code 96.
    # Output at scale 0.5/128: 0.375 -> 96 (exact); 0.37207 -> 95.25 -> 95.
    np.testing.assert_allclose(y, _q(0.5 * w_value, 0.5 / 128), rtol=1e-6)
    assert _q(0.5 * 96 / 128, 0.5 / 128) != _q(0.5 * 0.75 * 127 / 128, 0.5 / 128)


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
    y = _run(_model([node], inits, 1, 2), {"x": 2.0, "y": 0.05}, x, per_channel=per_channel)
    # x = 1.0 at scale 2/128 is exact. Channel 1 (0.02): per tensor, threshold 0.5 -> scale 1/256,
    # 0.02 -> 5.12 -> 5/256; per channel, threshold 2**-5 -> scale 2**-12, 0.02 -> 81.92 -> 82/4096.
    # The output (per tensor, threshold 0.05): 5/256 -> 50 (exact), 82/4096 -> 51.25 -> 51;
    # channel 0 (127/256) clips to 127 * 0.05/128.
    ch1 = 82 / 4096 if per_channel else 5 / 256
    np.testing.assert_allclose(y[0, :, 0, 0], [_q(127 / 256, 0.05 / 128), _q(ch1, 0.05 / 128)], rtol=1e-6)
    assert _q(82 / 4096, 0.05 / 128) != _q(5 / 256, 0.05 / 128)


def test_skipped_conv_keeps_float_weights_but_reads_its_producers_int8_value():
    c0, i0 = _conv("c0", "x", [0.3], "t")
    c1, i1 = _conv("c1", "t", [0.4], "y")
    model = _model([c0, c1], i0 + i1, 1, 1)
    x = np.array([0.7, 0.1, 0.9, 0.33]).reshape(1, 1, 1, 4)
    th = {"x": 1.0, "t": 0.3, "y": 0.2}
    # c0 float: t = 0.3 x exactly; c1 quantizes t at 0.3/128 and its weight 0.4 (threshold 0.5:
    # 102/256); the result is rounded at y's 0.2/128.
    y = _run(model, th, x, float_convs=("c0",)).ravel()
    expected = [_q(_q(0.3 * v, 0.3 / 128) * 102 / 256, 0.2 / 128) for v in x.ravel()]
    np.testing.assert_allclose(y, expected, rtol=1e-5)
    # Nothing skipped: x is rounded at 1/128 and 0.3 becomes 77/256 (threshold 0.5) before t is rounded.
    t_int8 = [_q(_q(v, 1 / 128) * 77 / 256, 0.3 / 128) for v in x.ravel()]
    np.testing.assert_allclose(_run(model, th, x).ravel(), [_q(t * 102 / 256, 0.2 / 128) for t in t_int8], rtol=1e-5)
    # c1 skipped: its weight stays 0.4 and its output float, but its argument is c0's 32-bit result,
    # which the partition pass's cast_hint rounds to int8 at t's threshold all the same.
    y_last = _run(model, th, x, float_convs=("c1",)).ravel()
    np.testing.assert_allclose(y_last, [t * 0.4 for t in t_int8], rtol=1e-5)


@pytest.mark.parametrize("order", ["t1_first", "t2_first"])
def test_add_of_two_conv_results_rounds_both_and_meets_at_the_finer_scale(order):
    c1, i1 = _conv("c1", "x", [0.3], "t1")
    c2, i2 = _conv("c2", "x", [0.7], "t2")
    ins = ["t1", "t2"] if order == "t1_first" else ["t2", "t1"]
    add = helper.make_node("Add", ins, ["y"], name="add")
    x = np.full((1, 1, 1, 4), 1.0)
    y = _run(_model([c1, c2, add], i1 + i2, 1, 1), {"x": 2.0, "t1": 6.0, "t2": 7.0, "y": 9.0}, x).ravel()
    t1, t2 = 77 / 256, 90 / 128  # int32 conv results: x exact, weights 0.3 -> 77/256, 0.7 -> 90/128
    # Partition realizes both sides of an add of two partitioned values: each is rounded to int8
    # at its own threshold (t1: 6/128 -> code 6; t2: 7/128 -> code 13), then t2's code moves onto
    # t1's finer grid (13 * 7/6 = 15.17 -> 15). The sum is an INPUT value at 6/128: the function's
    # cast_hint does not requantize it (y's threshold is not used).
    a, b = _q(t1, 6 / 128), _q(t2, 7 / 128)
    expected = a + _grid(b, 7 / 128, 6 / 128)
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    assert abs(_grid(b, 7 / 128, 6 / 128) - b) > 1e-3  # the common scale matters


def test_value_read_twice_is_requantized_at_its_own_threshold():
    c1, i1 = _conv("c1", "x", [0.3], "t1")
    c2, i2 = _conv("c2", "x", [0.7], "t2")
    add1 = helper.make_node("Add", ["t1", "t2"], ["s"], name="add1")
    relu = helper.make_node("Relu", ["s"], ["r"], name="relu")
    c3, i3 = _conv("c3", "r", [0.5], "t3")
    add2 = helper.make_node("Add", ["r", "t3"], ["y"], name="add2")
    th = {"x": 2.0, "t1": 6.0, "t2": 7.0, "s": 9.0, "r": 1.3, "t3": 0.6, "y": 3.0}
    model = _model([c1, c2, add1, relu, c3, add2], i1 + i2 + i3, 1, 1)
    y = _run(model, th, np.full((1, 1, 1, 4), 1.0)).ravel()
    # s = 6/128 * 6 + 15 * 6/128 = 0.984375 (as in the add test), an int32 INPUT value. r = relu(s)
    # has two readers (c3, add2): fmulti_ref rounds it once at r's threshold 1.3/128 (96.92 -> 97).
    r = _q(_q(77 / 256, 6 / 128) + _grid(_q(90 / 128, 7 / 128), 7 / 128, 6 / 128), 1.3 / 128)
    t3 = r * 127 / 256  # c3's weight 0.5: threshold 0.5 -> 128 -> clipped to 127/256
    # add2 of two partitioned values: t3 rounded at 0.6/128 (104.26 -> 104); r moves onto that grid.
    expected = _grid(r, 1.3 / 128, 0.6 / 128) + _q(t3, 0.6 / 128)
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    assert abs(r - 0.984375) > 5e-4  # the requantization matters


def test_concat_rounds_each_input_at_its_own_threshold_then_meets_at_the_finer_scale():
    c1, i1 = _conv("c1", "x", [0.3], "t1")
    c2, i2 = _conv("c2", "x", [0.7], "t2")
    cat = helper.make_node("Concat", ["t1", "t2"], ["y"], name="cat", axis=1)
    x = np.full((1, 1, 1, 4), 1.0)
    y = _run(_model([c1, c2, cat], i1 + i2, 1, 2), {"x": 2.0, "t1": 0.45, "t2": 7.0, "y": 7.0}, x)
    # concatenate has no partition rule: both conv results are rounded at their cast_hints (t1 at
    # 0.45/128: 85.56 -> 86; t2 at 7/128: 12.86 -> 13), then unified onto t1's finer grid
    # (13 * 7/0.45 = 202.2 -> 202). The concat is not partitioned: the output is not rounded again.
    t1, t2 = 77 / 256, 90 / 128
    expected = [_q(t1, 0.45 / 128), _grid(_q(t2, 7 / 128), 7 / 128, 0.45 / 128)]
    np.testing.assert_allclose(y[0, :, 0, 0], expected, rtol=1e-6)
    assert abs(expected[1] - _q(t2, 7 / 128)) > 1e-4


def test_bias_is_an_int8_weight_and_leaky_relu_reads_an_int8_value(tmp_path: Path):
    c, i = _conv("c", "x", [0.5 - 1e-3], "t", bias=[0.3])
    lrelu = helper.make_node("LeakyRelu", ["t"], ["y"], name="lrelu", alpha=0.5)
    model = _model([c, lrelu], i, 1, 1)
    onnx.save(model, str(tmp_path / "m.onnx"))
    summary = quantize_vacc(tmp_path / "m.onnx", tmp_path / "q.onnx", {"x": (-1.0, 1.0), "t": (-0.5, 1.1)},
                            weight_scale="power2", per_channel=False, float_convs=())
    assert summary["float_op_types"] == ["LeakyRelu"] and summary["int8_activations"] == 2
    assert summary["int8_outputs"] == []  # LeakyRelu's result is float
    sess = ort.InferenceSession(str(tmp_path / "q.onnx"), providers=["CPUExecutionProvider"])
    x = np.array([-1.0, -0.5, 0.25, 0.8]).reshape(1, 1, 1, 4).astype(np.float32)
    y = sess.run(None, {"x": x})[0].ravel()
    # bias 0.3 as a WEIGHT: threshold 0.5, 0.3 * 256 = 76.8 -> 77/256. LeakyRelu has no quantize
    # rule: partition rounds its argument to int8 at t's threshold 1.1 (the larger magnitude of the
    # range), and LeakyRelu runs in float on that.
    t = [_q(_q(v, 1 / 128) * _q(0.499, 1 / 256) + 77 / 256, 1.1 / 128) for v in x.ravel()]
    np.testing.assert_allclose(y, [v if v > 0 else 0.5 * v for v in t], rtol=1e-6)


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


def test_partition_puts_cast_hints_where_tvm_does():
    from vacc_deploy.backends.ort.tvm_passes import partition, reference_counts

    c0, i0 = _conv("c0", "x", [0.5], "t0", bias=[0.1])
    relu = helper.make_node("Relu", ["t0"], ["r"], name="relu")
    c1, i1 = _conv("c1", "r", [0.5], "t1")
    add = helper.make_node("Add", ["r", "t1"], ["s"], name="add")
    d2s = helper.make_node("DepthToSpace", ["s"], ["d"], name="d2s", blocksize=1)
    c2, i2 = _conv("c2", "d", [0.5], "y")
    model = _model([c0, relu, c1, add, d2s, c2], i0 + i1 + i2, 1, 1)
    p = partition(model)
    # c0 reads the graph input (no cast_hint); relu forwards; c1 realizes r; the add of two partitioned
    # values realizes both sides; DepthToSpace has no rule (realizes s); c2 reads a plain value; the
    # result is partitioned (cast_hint).
    assert p.edges == {(2, 0), (3, 0), (3, 1), (4, 0)} and p.outputs == {"y"}
    assert reference_counts(model)["r"] == 2 and reference_counts(model)["y"] == 1


def _minimize_kl_literal(hist: np.ndarray, nq: int) -> float:
    """calibrate.cc MinimizeKL transcribed loop by loop (the oracle for the vectorized version)."""
    nb, eps = hist.size, 1e-4
    zero = nb // 2
    best, best_t = float("inf"), None
    for i in range(nq // 2, zero + 1):
        start, stop = zero - i, zero + i + 1
        sliced, p = [0.0] * (stop - start), [0.0] * (stop - start)
        for j in range(nb):
            if j <= start:
                p[0] += hist[j]
            elif j >= stop:
                p[-1] += hist[j]
            else:
                sliced[j - start] = p[j - start] = float(hist[j])
        m = len(sliced) // nq
        qb = [sum(sliced[j * m:(j + 1) * m]) for j in range(nq)]
        qb[-1] += sum(sliced[nq * m:])
        q = [0.0] * len(sliced)
        for j in range(nq):
            lo, hi = j * m, len(q) if j == nq - 1 else (j + 1) * m
            norm = sum(1 for v in sliced[lo:hi] if v != 0)
            for k in range(lo, hi):
                if norm and p[k]:
                    q[k] = qb[j] / norm

        def smooth(v):
            zeros = sum(1 for a in v if a == 0)
            e1 = eps * zeros / (len(v) - zeros)
            return [a + eps if a == 0 else a - e1 for a in v]

        ps, qs = smooth(p), smooth(q)
        ps, qs = [a / sum(ps) for a in ps], [a / sum(qs) for a in qs]
        div = sum(a * np.log(a / b) for a, b in zip(ps, qs))
        if div < best - 1e-6:
            best, best_t = div, stop
    return best_t


def test_tvm_kl_threshold_matches_minimize_kl():
    from types import SimpleNamespace

    from vacc_deploy.calibration.tvm_kl import TVMKLCalibration

    rng = np.random.default_rng(3)
    x = np.concatenate([np.zeros(4000), rng.exponential(0.3, 6000), -rng.exponential(0.05, 500)]).astype(np.float32)
    t = float(np.abs(x).max())
    hist, edges = np.histogram(x, bins=61, range=(-t, t))  # _find_scale_by_kl's histogram
    stats = SimpleNamespace(hist=hist, edges=edges, min=float(x.min()), max=float(x.max()))
    lo, hi = TVMKLCalibration(num_quantized_bins=7).compute_range(stats)
    stop = _minimize_kl_literal(hist, 7)
    assert lo == -hi and hi == pytest.approx(float(edges[stop]))
    assert hi < t  # it clips: the zero bin is kept, unlike ours
