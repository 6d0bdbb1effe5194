"""GPTQ weight rounding on ONNX Runtime's grid and the Conv input second moments it reads."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from vacc_deploy.backends.ort.conv_stats import _ConvPatches, conv_second_moments
from vacc_deploy.backends.ort.weight_rounding import gptq_levels, grid_scale, round_conv_weights
from vacc_deploy.backends.ort.qdq import quantize_int8
from vacc_deploy.calibration import ArraySource, calibrate
from vacc_deploy.errors import BuildError
from tests.graphs import conv_relu_conv_add, random_inputs


def _correlated(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """(n, k) inputs whose 9-wide groups share a common component (like a 3x3 patch) plus an offset."""
    base = rng.standard_normal((n, k // 9, 1))
    return (base + 0.4 * rng.standard_normal((n, k // 9, 9))).reshape(n, k) + 0.3


def _energy(d, h):
    return float(np.einsum("ok,kl,ol->", d, h, d))


def test_gptq_levels_lower_the_output_error_and_keep_the_grid():
    rng = np.random.default_rng(0)
    x = _correlated(4096, 144, rng)
    h = x.T @ x / len(x)
    w = rng.standard_normal((16, 144)) * 0.05
    s = grid_scale(w, 127, per_channel=True)
    q = gptq_levels(w, h, s, 127)
    nearest = np.clip(np.rint(w / s[:, None]), -127, 127)
    assert np.array_equal(q, np.rint(q)) and np.abs(q).max() <= 127
    assert (np.abs(q).max(axis=1) == 127).all()  # every row keeps its step
    assert _energy(q * s[:, None] - w, h) < 0.6 * _energy(nearest * s[:, None] - w, h)
    with pytest.raises(BuildError, match="disagree"):
        gptq_levels(w, h[:10, :10], s, 127)


def test_per_tensor_grid_has_one_step():
    w = np.array([[1.0, -0.5], [0.1, 0.2]])
    assert np.allclose(grid_scale(w, 127, per_channel=False), 1.0 / 127)
    assert np.allclose(grid_scale(w, 64, per_channel=True), [1.0 / 64, 0.2 / 64])


def test_patches_reproduce_the_conv(tmp_path):
    path = conv_relu_conv_add(tmp_path / "m.onnx")
    model = onnx.load(str(path))
    node = next(n for n in model.graph.node if n.name == "c1")
    w = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "w1"))
    b = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "b1"))
    x = random_inputs(1)[0]
    patches = _ConvPatches(node, (3, 3))
    oh, ow = patches.out_size(16, 16)
    oy, ox = np.divmod(np.arange(oh * ow), ow)
    cols = patches.at(x, oy, ox)
    model.graph.output[0].name = "t1"  # read the conv's output
    del model.graph.node[1:]
    out = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(w.reshape(8, -1) @ cols + b[:, None], out[0].reshape(8, -1), atol=1e-5)


def test_second_moments_match_the_inputs(tmp_path):
    path = conv_relu_conv_add(tmp_path / "m.onnx")
    images = random_inputs(6)
    h = conv_second_moments(onnx.load(str(path)), ArraySource(images), ["c1", "c2"], images=4, pixels=256,
                            max_bytes=1)  # one group per conv: two passes
    assert h["c1"].shape == (27, 27) and h["c2"].shape == (72, 72)
    assert np.allclose(h["c1"], h["c1"].T) and np.linalg.eigvalsh(h["c1"]).min() > 0
    # the centre tap of c1 sees the image itself: E[x_c^2] over the first 4 images
    centre = [c * 9 + 4 for c in range(3)]
    want = np.array([np.mean(np.concatenate([im[0, c].ravel() for im in images[:4]]) ** 2) for c in range(3)])
    np.testing.assert_allclose(np.diag(h["c1"])[centre], want, rtol=0.1)


def test_ort_writes_exactly_the_rounded_levels(tmp_path):
    path = conv_relu_conv_add(tmp_path / "m.onnx")
    model = onnx.load(str(path))
    images = random_inputs(6)
    h = conv_second_moments(model, ArraySource(images), ["c1", "c2"], pixels=128)
    gains = round_conv_weights(model, h, ["c1", "c2"])
    assert set(gains) == {"c1", "c2"} and all(g <= 1.0 + 1e-9 for g in gains.values())
    rounded = tmp_path / "rounded.onnx"
    onnx.save(model, str(rounded))
    ranges = calibrate(rounded, ArraySource(images), "max", progress=False).ranges
    qpath = tmp_path / "q.onnx"
    quantize_int8(rounded, qpath, ranges)
    q = onnx.load(str(qpath))
    inits = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    mine = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for conv in (n for n in q.graph.node if n.op_type == "Conv"):
        dq = next(n for n in q.graph.node if n.op_type == "DequantizeLinear" and n.output[0] == conv.input[1])
        levels = inits[dq.input[0]].astype(np.float64)
        w = mine[{"c1": "w1", "c2": "w2"}[conv.name]].astype(np.float64)
        expect = w / grid_scale(w.reshape(len(w), -1), 127, True)[:, None, None, None]
        assert np.array_equal(levels, np.rint(expect)), conv.name


def test_shared_weights_are_refused(tmp_path):
    model = onnx.load(str(conv_relu_conv_add(tmp_path / "m.onnx")))
    model.graph.node[2].input[1] = "w1"  # c2 now reads c1's weight (shapes need not fit for this check)
    with pytest.raises(BuildError, match="untie"):
        round_conv_weights(model, {"c1": np.eye(27)}, ["c1"])
