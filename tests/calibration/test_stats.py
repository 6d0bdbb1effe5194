"""One-pass streaming statistics against a brute-force computation over all activations held in
memory: extremes and edges exact, histogram counts within the bound stated in calibration.stats, ranges
equal (max) or within that bound (percentile, kl_divergence) of ONNX Runtime's own collector."""

from __future__ import annotations

import numpy as np
import pytest
from onnxruntime.quantization.calibrate import HistogramCollector

from tests.graph_fixtures import TENSORS
from vacc_deploy.calibration import ArraySource, calibrate
from vacc_deploy.calibration.collect import DEFAULT_OP_TYPES, infer_shapes, select_tensors
from vacc_deploy.calibration.methods import KLCalibration, PercentileCalibration, _window_divergence
from vacc_deploy.calibration.stats import TensorStats


def streamed(chunks, kind, num_bins=2048) -> TensorStats:
    stats = TensorStats(kind, num_bins)
    for a in chunks:
        stats.update(a)
    stats.finish()
    return stats


def exact_histogram(data: np.ndarray, kind: str, num_bins=2048):
    """What the two-pass collection (and ORT's collector) builds: np.histogram over the final range."""
    if kind == "signed":
        t = np.float32(max(abs(data.min()), abs(data.max())))
        return np.histogram(data, num_bins, range=(-t, t))
    return np.histogram(np.abs(data), num_bins)


def assert_within_bound(stats: TensorStats, data: np.ndarray, kind: str) -> None:
    """Edges identical; the cumulative count at each edge off by less than one fine bin, which lies
    inside the two final bins around that edge (the bound of calibration.stats)."""
    hist, edges = exact_histogram(data, kind)
    np.testing.assert_array_equal(stats.edges, edges.astype(np.float32))
    assert stats.hist.sum() == hist.sum() == data.size
    diff = np.abs(np.cumsum(stats.hist) - np.cumsum(hist))[:-1]
    assert np.all(diff <= hist[:-1] + hist[1:])


def test_selects_the_tensors_ort_calibrates(tiny_model):
    import onnx

    assert select_tensors(infer_shapes(onnx.load(str(tiny_model))), DEFAULT_OP_TYPES) == TENSORS


@pytest.mark.parametrize("kind", ["signed", "abs"])
def test_streamed_histograms_within_bound_of_brute_force(brute, kind):
    for name, data in brute.items():
        s = streamed(np.split(data, 10), kind)
        assert s.min == data.min() and s.max == data.max(), name
        assert_within_bound(s, data, kind)


@pytest.mark.parametrize("kind", ["signed", "abs"])
def test_widening_keeps_counts_within_bound(kind):
    """Ranges that grow 1000-fold over the images (each widening merges bins exactly)."""
    rng = np.random.default_rng(5)
    chunks = [(rng.standard_normal(50_000) * 2.0 ** i + i).astype(np.float32) for i in range(10)]
    chunks.insert(0, np.full(100, 0.25, np.float32))  # a constant first image
    data = np.concatenate(chunks)
    s = streamed(chunks, kind)
    assert s.min == data.min() and s.max == data.max()
    if kind == "abs":
        assert s.abs_min == np.abs(data).min()
    assert_within_bound(s, data, kind)


def test_nan_and_inf_are_ignored():
    data = np.array([1.0, np.nan, -2.0, np.inf, 0.5, -np.inf], np.float32)
    s = streamed([data], "signed")
    assert (s.min, s.max) == (-2.0, 1.0) and s.hist.sum() == 3


def _ort_ranges(data, method, percentile=99.99):
    coll = HistogramCollector(method=method, symmetric=(method == "percentile"), num_bins=2048,
                              num_quantized_bins=128, percentile=percentile, scenario="same")
    coll.collect({k: [v] for k, v in data.items()})
    res = coll.compute_collection_result()
    return {k: (float(v[0]), float(v[1])) for k, v in res.items()}


def kl_excess(data: np.ndarray, window: tuple[float, float], best: tuple[float, float]) -> float:
    """How much larger the KL divergence of ``window`` is than that of ``best`` on the exact histogram
    (windows are centred on zero: compared by their upper edge's bin)."""
    hist, edges = exact_histogram(data, "signed")
    zero = hist.size // 2

    def div(hi: float) -> float:
        i = int(np.argmin(np.abs(edges - hi))) - zero - 1
        return _window_divergence(hist, zero - i, zero + i + 1, 128)

    return div(window[1]) - div(best[1])


@pytest.mark.parametrize("method", ["max", "percentile", "kl_divergence"])
def test_ranges_against_in_memory_reference(tiny_model, images, brute, method):
    ours = calibrate(tiny_model, ArraySource(images), method, progress=False, ort_compat=True).ranges
    assert list(ours) == TENSORS
    for k, data in brute.items():
        if method == "max":  # brute ran with ORT's default optimizations: last-bit differences
            assert ours[k] == pytest.approx((float(data.min()), float(data.max())), rel=1e-6, abs=1e-7), k
        elif method == "percentile":  # the threshold moves by at most one bin
            ref = _ort_ranges({k: data}, "percentile")[k]
            width = float(np.abs(data).max() - np.abs(data).min()) / 2048
            assert ours[k] == pytest.approx(ref, abs=width * 1.0001 + 1e-6), k
        else:  # near-optimal on the exact histogram (ORT's search is slow: test_vs_ort runs it)
            best = KLCalibration(ort_compat=True).compute_range(streamed_exact(data))
            assert kl_excess(data, ours[k], best) <= 0.01, k


def streamed_exact(data: np.ndarray) -> TensorStats:
    """Stats whose histogram is the exact two-pass one (for reference ranges)."""
    s = TensorStats("signed")
    s.update(data)
    s.finish()
    s.hist, s.edges = (a.astype(np.float32) if i else a for i, a in enumerate(exact_histogram(data, "signed")))
    return s


def test_percentile_near_numpy_percentile(brute):
    for name, data in brute.items():
        s = streamed([data], "abs")
        lo, hi = PercentileCalibration(percentile=99.9).compute_range(s)
        width = float(s.edges[1] - s.edges[0])
        q = float(np.percentile(np.abs(data), 99.9))
        assert abs(hi - min(q, data.max())) <= 2 * width + 1e-6, name


def test_kl_method_matches_ort_on_one_histogram(brute):
    data = brute["t3"]
    s = streamed_exact(data)
    coll = HistogramCollector("entropy", False, 2048, 128, 99.99, "same")
    ort_t = coll.get_entropy_threshold((s.hist, s.edges, s.min, s.max, None), 128)
    assert KLCalibration(ort_compat=True).compute_range(s) == (float(ort_t[0]), float(ort_t[1]))


def test_relu_and_permutation_statistics_are_derived():
    """A Relu's output (signed histogram) follows from its input's fine histogram, within the same
    bound; a permutation's output shares its input's statistics; an abs histogram cannot give a Relu's."""
    rng = np.random.default_rng(6)
    chunks = [(rng.standard_normal(40_000) * (1 + i) - 0.5).astype(np.float32) for i in range(5)]
    x = TensorStats("signed")
    for c in chunks:
        x.update(c)
    relu = x.derived("Relu")
    relu.finish()
    data = np.maximum(np.concatenate(chunks), 0)
    assert (relu.min, relu.max, relu.count) == (data.min(), data.max(), data.size)
    assert_within_bound(relu, data, "signed")
    assert x.derived("DepthToSpace") is x
    with pytest.raises(ValueError):
        TensorStats("abs").derived("Relu")


def _kernel_module(name: str):
    import importlib

    return importlib.import_module(f"vacc_deploy.calibration.{name}")


@pytest.mark.parametrize("module", ["_kernels", "_numpy_kernels"])
@pytest.mark.parametrize("absolute", [False, True])
def test_counting_loops_put_every_value_in_its_grid_bin(absolute, module):
    """Both loops (compiled, and their numpy twins) count each value in bin floor(a / w) - k0,
    exactly: also values a hair below zero or below a bin edge, where computing a / w - k0 first
    would round them into the next bin; ``count`` skips NaN, +-inf and values outside the window."""
    count, count_finite = _kernel_module(module).count, _kernel_module(module).count_finite
    rng = np.random.default_rng(8)
    w = 2.0 ** -10
    edges = (rng.integers(-300, 300, 2000) * w).astype(np.float32)
    data = np.concatenate([rng.normal(0, 0.1, 200_000), np.nextafter(edges, -np.inf), edges,
                           [-1e-30, -1e-38, 1e-30, 0.0, -0.0]]).astype(np.float32)
    vals = np.abs(data.astype(np.float64)) if absolute else data.astype(np.float64)
    k0 = float(np.floor(vals.min() / w))
    ref = np.bincount((np.floor(vals / w) - k0).astype(np.int64), minlength=4096)[:4096]
    for loop in (count, count_finite):
        out = np.zeros(4096, np.int64)
        loop(data, absolute, 1.0 / w, k0, out)
        np.testing.assert_array_equal(out, ref)
    out = np.zeros(4096, np.int64)
    count(np.concatenate([data, np.float32([np.nan, np.inf, -np.inf, 1e30, -1e30])]), absolute, 1.0 / w, k0, out)
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("module", ["_kernels", "_numpy_kernels"])
def test_extremes_from_ordered_bit_patterns(module):
    """One pass gives numpy's min, max and least magnitude, and tells NaN and +-inf apart from finite
    values (compiled, and the numpy twin: the same keys)."""
    from vacc_deploy.calibration._kernels import extremes as compiled
    from vacc_deploy.calibration._numpy_kernels import KEY_NEG_INF, KEY_POS_INF, key_value

    extremes = _kernel_module(module).extremes
    assert tuple(int(k) for k in extremes(np.zeros(0, np.float32))) == (KEY_POS_INF, KEY_NEG_INF, 0x7FFFFFFF)

    rng = np.random.default_rng(9)
    for data in (rng.normal(0, 3, 10_001), -rng.random(999) - 1e-30, np.array([-0.0, 1e-45, -1e-45, 7.0]),
                 np.array([np.float32(3.4e38), -np.float32(3.4e38)])):
        data = data.astype(np.float32)
        lo, hi, mag = extremes(data)
        assert KEY_NEG_INF < lo <= hi < KEY_POS_INF
        assert (key_value(int(lo)), key_value(int(hi))) == (float(data.min()), float(data.max()))
        assert key_value(int(mag)) == float(np.abs(data).min())
        assert tuple(int(k) for k in extremes(data)) == tuple(int(k) for k in compiled(data))
    for bad in (np.inf, -np.inf, np.nan, -np.nan):
        data = np.array([1.0, bad, -2.0], np.float32)
        lo, hi, _ = extremes(data)
        assert not (KEY_NEG_INF < lo and hi < KEY_POS_INF), bad
        assert tuple(int(k) for k in extremes(data)) == tuple(int(k) for k in compiled(data))


def test_numpy_loops_serve_while_the_compiled_ones_load(monkeypatch):
    """kernels() hands out the numpy twins while a warm-up is under way, the compiled loops otherwise;
    statistics folded either way are the same."""
    from vacc_deploy.calibration import histogram

    monkeypatch.setitem(histogram._LOAD, "ready", False)
    monkeypatch.setitem(histogram._LOAD, "loading", True)
    assert histogram.kernels() is _kernel_module("_numpy_kernels")
    rng = np.random.default_rng(3)
    chunks = [rng.normal(0, 2, 5000).astype(np.float32) * (i + 1) for i in range(4)]
    during = {kind: TensorStats(kind) for kind in ("signed", "abs")}
    for kind, s in during.items():
        for c in chunks:
            s.update(c)
    monkeypatch.setitem(histogram._LOAD, "loading", False)
    assert histogram.kernels() is _kernel_module("_kernels")
    for kind, s in during.items():
        after = TensorStats(kind)
        for c in chunks:
            after.update(c)
        s.finish()
        after.finish()
        assert (s.min, s.max) == (after.min, after.max)
        np.testing.assert_array_equal(s.hist, after.hist)
        np.testing.assert_array_equal(s.edges, after.edges)
