"""quantize_int8 (QDQ from our ranges) and convert_fp16."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from vacc_deploy.errors import BuildError, UsageError
from vacc_deploy.backends.ort.qdq import convert_fp16, quantize_int8
from vacc_deploy.calibration import ArraySource, calibrate


@pytest.fixture(scope="module")
def ranges(tiny_model, images):
    return calibrate(tiny_model, ArraySource(images), "max", progress=False).ranges


def _run(path, x, optimize=False):
    """Run on CPU; without graph optimizations ORT evaluates Q/DQ exactly as written (fused u8s8
    kernels may saturate on CPUs without VNNI, see quantize_int8's reduce_range)."""
    opts = ort.SessionOptions()
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def _inits(model):
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def test_quantize_int8_scales_match_ranges(tiny_model, ranges, images, tmp_path):
    out = tmp_path / "q.onnx"
    quantize_int8(tiny_model, out, ranges)
    model = onnx.load(str(out))
    inits = _inits(model)
    qs = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert qs, "no QuantizeLinear node"
    for node in qs:
        name = node.input[0].removesuffix("_QuantizeLinear_Input")  # graph outputs get renamed
        lo, hi = ranges["t2" if name == "t1" else name]  # ORT gives Relu's input its output range
        lo, hi = min(lo, 0.0), max(hi, 0.0)
        scale, zp = inits[node.input[1]], inits[node.input[2]]
        assert zp.dtype == np.uint8
        assert float(scale) == pytest.approx((hi - lo) / 255.0, rel=1e-5), name
        assert int(zp) == int(round(-lo / ((hi - lo) / 255.0))), name
    for conv in (n for n in model.graph.node if n.op_type == "Conv"):
        dq = next(n for n in model.graph.node
                  if n.op_type == "DequantizeLinear" and n.output[0] == conv.input[1])
        assert inits[dq.input[0]].dtype == np.int8
        scale = inits[dq.input[1]]
        assert scale.ndim == 1 and scale.size == inits[dq.input[0]].shape[0]
        assert next(a.i for a in dq.attribute if a.name == "axis") == 0
    x = images[0]
    ref, got = _run(tiny_model, x), _run(out, x)
    assert np.abs(ref - got).max() < 0.03 * np.abs(ref).max()


def test_reduce_range_runs_close_with_fused_kernels(tiny_model, ranges, images, tmp_path):
    out = tmp_path / "q7.onnx"
    quantize_int8(tiny_model, out, ranges, reduce_range=True)
    x = images[0]
    ref, got = _run(tiny_model, x), _run(out, x, optimize=True)
    assert np.abs(ref - got).max() < 0.03 * np.abs(ref).max()


def test_nodes_to_exclude_keeps_conv_float(tiny_model, ranges, tmp_path):
    out = tmp_path / "q_skip.onnx"
    quantize_int8(tiny_model, out, ranges, nodes_to_exclude=["c2"])
    model = onnx.load(str(out))
    c2 = next(n for n in model.graph.node if n.name == "c2")
    assert c2.input[1] == "w2" and _inits(model)["w2"].dtype == np.float32
    assert not any(n.op_type == "DequantizeLinear" and n.input[0].startswith("w2")
                   for n in model.graph.node)
    c1 = next(n for n in model.graph.node if n.name == "c1")
    assert any(n.op_type == "DequantizeLinear" and n.output[0] == c1.input[1]
               for n in model.graph.node)
    _run(out, np.zeros((1, 3, 16, 16), np.float32))


def test_16bit_activations_keep_int8_weights_and_cut_the_error(tiny_model, ranges, images, tmp_path):
    out8, out16 = tmp_path / "q8.onnx", tmp_path / "q16.onnx"
    quantize_int8(tiny_model, out8, ranges)
    quantize_int8(tiny_model, out16, ranges, activation_bits=16)
    model = onnx.load(str(out16))
    inits = _inits(model)
    qs = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert qs and all(inits[n.input[2]].dtype == np.uint16 for n in qs)
    node = next(n for n in qs if n.input[0] == "t3")
    lo, hi = min(ranges["t3"][0], 0.0), max(ranges["t3"][1], 0.0)
    assert float(inits[node.input[1]]) == pytest.approx((hi - lo) / 65535.0, rel=1e-5)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    for conv in convs:
        dq = next(n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.output[0] == conv.input[1])
        assert inits[dq.input[0]].dtype == np.int8
    x = images[0]
    ref = _run(tiny_model, x)
    err8, err16 = (float(np.abs(_run(p, x) - ref).max()) for p in (out8, out16))
    assert err16 < err8


def test_activation_bits_must_be_8_or_16(tiny_model, ranges, tmp_path):
    with pytest.raises(UsageError, match="activation_bits"):
        quantize_int8(tiny_model, tmp_path / "q.onnx", ranges, activation_bits=12)


def test_quantize_int8_errors(tiny_model, ranges, tmp_path):
    out = tmp_path / "bad.onnx"
    with pytest.raises(UsageError, match="not found"):
        quantize_int8(tiny_model, out, ranges, nodes_to_exclude=["nope"])
    with pytest.raises(BuildError, match="no calibration range"):
        quantize_int8(tiny_model, out, {k: v for k, v in ranges.items() if k != "t3"})
    assert not out.exists() and not list(tmp_path.glob(".bad.onnx.*"))


def test_convert_fp16(tiny_model, images, tmp_path):
    out = tmp_path / "h.onnx"
    convert_fp16(tiny_model, out)
    model = onnx.load(str(out))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert _inits(model)["w1"].dtype == np.float16
    x = images[0]
    ref, got = _run(tiny_model, x), _run(out, x)
    assert got.dtype == np.float32 and np.abs(ref - got).max() < 1e-2


def test_convert_fp16_shared_constant_of_two_blocked_ops(tmp_path):
    """ORT's converter keeps Resize in float32 and names the Cast it inserts on a Resize input after
    the input tensor: two Resizes reading one Constant used to give two nodes of one name, a model
    ONNX Runtime refuses to load (found on the RRDBNet rows)."""
    from tests.graphs import two_resizes_one_scales

    src = two_resizes_one_scales(tmp_path / "r.onnx")
    out = tmp_path / "r16.onnx"
    convert_fp16(src, out)
    names = [n.name for n in onnx.load(str(out)).graph.node]
    assert len(names) == len(set(names))
    x = np.random.default_rng(0).random((1, 3, 8, 8), dtype=np.float32)
    assert np.abs(_run(src, x) - _run(out, x)).max() < 1e-2


def test_sr_like_graph_end_to_end(images, tmp_path):
    from tests.graphs import sr_like

    model = sr_like(tmp_path / "sr.onnx")
    res = calibrate(model, ArraySource(images[:4]), "kl_divergence", progress=False)
    assert list(res.ranges) == ["x", "a", "b", "c", "d", "u", "y"]
    quantize_int8(model, tmp_path / "sr_q.onnx", res.ranges)
    q = onnx.load(str(tmp_path / "sr_q.onnx"))
    assert {"QuantizeLinear", "DepthToSpace", "LeakyRelu"} <= {n.op_type for n in q.graph.node}
    ref, got = _run(model, images[0]), _run(tmp_path / "sr_q.onnx", images[0])
    assert np.abs(ref - got).max() < 0.03 * np.abs(ref).max()


def test_float_nodes_read_float_tensors(tiny_model, ranges, images, tmp_path):
    """With only Conv/Relu int8, the residual Add reads the float input and the float output of c2
    (ORT alone routes both through Q/DQ pairs), and no Q/DQ pair is left without a reader."""
    from vacc_deploy.calibration import INT8_OP_SETS

    out = tmp_path / "q.onnx"
    quantize_int8(tiny_model, out, ranges, op_types=INT8_OP_SETS["compute"])
    model = onnx.load(str(out))
    add = next(n for n in model.graph.node if n.op_type == "Add")
    assert sorted(add.input) == ["t3", "x"]
    read = {i for n in model.graph.node for i in n.input} | {"y"}
    assert all(o in read for n in model.graph.node for o in n.output)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert all(n.input[0].endswith("_DequantizeLinear_Output") for n in convs)
    x = images[0]
    ref, got = _run(tiny_model, x), _run(out, x)
    assert 0 < np.abs(ref - got).max() < 0.05


def test_float_conv_after_folded_relu_keeps_the_relu(tiny_model, ranges, images, tmp_path):
    """ORT deletes the Relu r1 after the int8 conv c1 (its output name t2 goes to c1; the Relu lives
    on in the Q/DQ pair's clipping at 0): the float conv c2 must keep reading that pair."""
    from vacc_deploy.calibration import INT8_OP_SETS

    out = tmp_path / "q.onnx"
    quantize_int8(tiny_model, out, ranges, op_types=INT8_OP_SETS["compute"], nodes_to_exclude=["c2"])
    model = onnx.load(str(out))
    assert "r1" not in {n.name for n in model.graph.node}
    c2 = next(n for n in model.graph.node if n.name == "c2")
    assert c2.input[0].endswith("_DequantizeLinear_Output")
    x = images[0]
    assert np.abs(_run(tiny_model, x) - _run(out, x)).max() < 0.05
