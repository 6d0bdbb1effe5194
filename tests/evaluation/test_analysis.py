"""Per-layer int8 error analysis: running sums against brute force, the combined graph against the
fp32 and int8 models run on their own, and results that do not depend on how layers are grouped."""

from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tests.graphs import random_inputs
from vacc_deploy.backends.ort.qdq import quantize_int8
from vacc_deploy.evaluation.analysis import OUTPUT_LAYER, ErrorStats, analyze_layers, quantized_convs


def test_error_stats_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    refs = [rng.standard_normal((2, 5)).astype(np.float32) for _ in range(4)]
    cands = [r + 0.05 * rng.standard_normal(r.shape).astype(np.float32) for r in refs]
    stats = ErrorStats()
    for r, c in zip(refs, cands):
        stats.update(r, c)
    ref, cand = np.concatenate(refs).astype(np.float64), np.concatenate(cands).astype(np.float64)
    assert stats.sqnr_db == pytest.approx(10 * math.log10((ref**2).sum() / ((cand - ref) ** 2).sum()))
    assert stats.cosine == pytest.approx((ref * cand).sum() / np.linalg.norm(ref) / np.linalg.norm(cand))
    same = ErrorStats()
    same.update(refs[0], refs[0])
    assert math.isinf(same.sqnr_db) and same.cosine == pytest.approx(1.0)


@pytest.fixture(scope="module")
def quantized(tiny_model, tmp_path_factory):
    ranges = {"x": (-3.0, 3.0), "t1": (-2.0, 2.0), "t2": (0.0, 2.0), "t3": (-1.5, 1.5), "y": (-4.0, 4.0)}
    out = tmp_path_factory.mktemp("analyze") / "int8.onnx"
    quantize_int8(tiny_model, out, ranges, op_types=("Conv", "Relu"))
    return out


def _run(path, x, names=None):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return sess.run(names, {"x": x})


def test_output_row_matches_separate_runs(tiny_model, quantized) -> None:
    xs = random_inputs(4)
    layers = analyze_layers(tiny_model, quantized, xs)
    assert [layer.name for layer in layers] == quantized_convs(onnx.load(str(quantized))) + [OUTPUT_LAYER]
    assert [layer.index for layer in layers] == [0, 1, None]
    expect = ErrorStats()
    for x in xs:
        expect.update(_run(tiny_model, x)[0], _run(quantized, x)[0])
    out = layers[-1].accumulated
    assert out.sqnr_db == pytest.approx(expect.sqnr_db, rel=1e-9) and out.n == 4
    first = layers[0]  # reads the graph input: quantized alone or in the network, the same error
    assert first.alone.sqnr_db == pytest.approx(first.accumulated.sqnr_db, rel=1e-9)
    assert 10 < first.alone.sqnr_db < 80 and 0.9 < first.alone.cosine <= 1.0
    second = layers[1]  # carries the first layer's error in the network, not alone
    assert second.alone.sqnr_db > second.accumulated.sqnr_db


def test_grouping_does_not_change_results(tiny_model, quantized) -> None:
    xs = random_inputs(3)
    one = [layer.to_dict() for layer in analyze_layers(tiny_model, quantized, xs)]
    many = [layer.to_dict() for layer in analyze_layers(tiny_model, quantized, xs, max_bytes_per_run=1)]
    assert one == many
