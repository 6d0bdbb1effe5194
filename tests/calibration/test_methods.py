"""Each method's range choice on crafted distributions, segmenting, and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from vacc_deploy.errors import BuildError, UsageError
from vacc_deploy.calibration import METHODS, ArraySource, CalibrationResult, CallableSource, calibrate
from vacc_deploy.calibration.collect import infer_shapes, plan_groups, select_tensors, tensor_nbytes
from vacc_deploy.calibration.segments import plan_segments
from vacc_deploy.calibration.methods import KLCalibration, MaxCalibration, PercentileCalibration
from vacc_deploy.calibration.stats import TensorStats


def _stats(data: np.ndarray, kind: str | None) -> TensorStats:
    s = TensorStats(kind)
    for chunk in np.array_split(data, 7):
        s.update(chunk)
    s.finish()
    return s


@pytest.fixture(scope="module")
def outlier() -> np.ndarray:
    """Relu-like activations (half-normal, sigma 1) plus one outlier at 50."""
    rng = np.random.default_rng(3)
    data = np.abs(rng.standard_normal(200_000)).astype(np.float32)
    data[123] = 50.0
    return data


def test_max_includes_outlier(outlier):
    assert MaxCalibration().compute_range(_stats(outlier, None)) == (float(outlier.min()), 50.0)


def test_percentile_clips_outlier(outlier):
    lo, hi = PercentileCalibration(percentile=99.99).compute_range(_stats(outlier, "abs"))
    assert lo == pytest.approx(float(outlier.min()))
    assert 3.0 < hi < 5.0  # 99.99th percentile of a half-normal is ~3.9


def test_kl_clips_outlier(outlier):
    lo, hi = KLCalibration().compute_range(_stats(outlier, "signed"))
    assert lo == pytest.approx(float(outlier.min()))
    assert 2.0 < hi < 10.0


@pytest.mark.parametrize("method", [MaxCalibration(), PercentileCalibration(), KLCalibration(),
                                    PercentileCalibration(symmetric=False)])
def test_constant_tensor_gets_a_valid_range(method):
    """A Constant node's output (RRDBNet's 0.2 residual scale) has all its mass in one bin: the range
    is still an ordered pair (it used to come out as (0.2, 0.19999999) and fail the int8 build)."""
    data = np.full(1000, 0.2, np.float32)
    lo, hi = method.compute_range(_stats(data, method.hist_kind))
    assert lo <= hi and hi == pytest.approx(0.2)


def test_percentile_signed_tensor_is_symmetric_then_clipped():
    rng = np.random.default_rng(4)
    data = np.concatenate([rng.uniform(-1, 0, 50_000), rng.uniform(0, 4, 50_000)]).astype(np.float32)
    lo, hi = PercentileCalibration(percentile=99.0).compute_range(_stats(data, "abs"))
    assert lo == pytest.approx(float(data.min()))  # -t below the minimum: clipped to it
    assert 3.5 < hi < 4.0
    lo2, hi2 = PercentileCalibration(percentile=99.0, symmetric=False).compute_range(
        _stats(data, "signed"))
    assert -1.0 < lo2 < -0.9 and 3.9 < hi2 <= 4.0


@pytest.mark.parametrize("method", ["max", "kl_divergence"])
def test_segments_give_identical_results(tiny_model, images, method):
    full = calibrate(tiny_model, ArraySource(images), method, progress=False)
    tiny = calibrate(tiny_model, ArraySource(images), method, progress=False,
                     max_segment_bytes=4 * 8 * 16 * 16)  # about one 8-channel tensor per segment
    assert full.segments == 1 and tiny.segments >= 3, tiny.segments
    assert tiny.ranges == full.ranges and tiny.stats == full.stats


def test_plan_segments_hands_over_crossing_tensors(tiny_model):
    import onnx

    model = infer_shapes(onnx.load(str(tiny_model)))
    names = [n for n in select_tensors(model, None) if n != "x"]
    sizes = {n: tensor_nbytes(model, n) for n in ("x", *names)}
    small, big = 4 * 3 * 16 * 16, 4 * 8 * 16 * 16  # x, t3, y (3 channels); t1, t2 (8 channels)
    segs = plan_segments(model, sizes, names, 2 * big + small + 1024)
    assert [(s.start, s.stop) for s in segs] == [(0, 2), (2, 4)]
    assert segs[0].inputs == ("x",) and segs[0].outputs == ("t1", "t2") and segs[0].release == ("t1",)
    assert set(segs[1].inputs) == {"x", "t2"} and segs[1].outputs == ("t3", "y")
    assert set(segs[1].release) == {"x", "t2", "t3", "y"}
    assert segs[0].nbytes == small + 2 * big and segs[1].nbytes == big + 3 * small


def test_plan_groups_respects_budget():
    sizes = {"a": 40, "b": 40, "c": 30, "d": 200, "e": None, "f": 10}
    assert plan_groups(sizes, 100) == [["a", "b"], ["d"], ["e"], ["c", "f"]]


def test_result_is_json_serializable(tiny_model, images):
    import json

    res = calibrate(tiny_model, ArraySource(images[:2]), "max", progress=False)
    back = CalibrationResult.from_dict(json.loads(json.dumps(res.to_dict())))
    assert back.ranges == res.ranges and back.num_images == 2
    assert back.segments == 1 and back.seconds_per_image > 0
    assert back.peak_rss_mb is None or back.peak_rss_mb > 0


def test_unknown_method_lists_known(tiny_model, images):
    with pytest.raises(UsageError) as err:
        calibrate(tiny_model, ArraySource(images), "minmaxx", progress=False)
    msg = str(err.value)
    assert "\n" not in msg and all(name in msg for name in METHODS)


def test_empty_source(tiny_model):
    with pytest.raises(UsageError, match="empty"):
        calibrate(tiny_model, ArraySource([]), "max", progress=False)


def test_badly_shaped_image(tiny_model):
    with pytest.raises(UsageError, match="expected \\(1, C, H, W\\)"):
        calibrate(tiny_model, ArraySource([np.zeros((2, 3, 16, 16), np.float32)]), "max",
                  progress=False)


def test_callable_source_is_reiterable(tiny_model, images):
    calls = []

    def factory():
        calls.append(1)
        return (im for im in images)

    res = calibrate(tiny_model, CallableSource(factory, len(images)), "percentile", progress=False)
    ref = calibrate(tiny_model, ArraySource(images), "percentile", progress=False)
    assert res.ranges == ref.ranges and len(calls) == 1  # one pass over the images


def test_source_yielding_nothing(tiny_model):
    with pytest.raises(BuildError, match="no image"):
        calibrate(tiny_model, CallableSource(lambda: iter(()), 3), "max", progress=False)


def test_kl_ignores_the_zero_spike_of_relu_outputs():
    """Exact zeros cost nothing in uint8; ORT's rule lets them drag the threshold down."""
    rng = np.random.default_rng(0)
    relu = np.maximum(rng.normal(0.0, 1.0, 200_000), 0.0).astype(np.float32)  # half exact zeros
    stats = _stats(relu, "signed")
    ours = KLCalibration().compute_range(stats)
    ort = KLCalibration(ort_compat=True).compute_range(stats)
    assert ours[0] == 0.0 and ort[0] == 0.0
    assert ours[1] > 1.5 * ort[1]
    assert ours[1] <= float(relu.max())


def test_mse_range_trades_clipping_against_rounding():
    from vacc_deploy.calibration.methods import MSECalibration

    rng = np.random.default_rng(1)
    data = rng.laplace(0.0, 1.0, 200_000).astype(np.float32)  # heavy tails
    lo, hi = MSECalibration().compute_range(_stats(data, "signed"))
    assert hi < 0.95 * float(data.max()) and lo > 0.95 * float(data.min())  # the rare tails are clipped
    assert hi > 3.0 and lo < -3.0  # the bulk is kept
    small = rng.uniform(-1, 1, 10_000).astype(np.float32)
    lo, hi = MSECalibration().compute_range(_stats(small, "signed"))
    assert lo == pytest.approx(float(small.min()), abs=0.05) and hi == pytest.approx(float(small.max()), abs=0.05)


def test_compiled_kl_search_equals_the_ort_arithmetic(outlier):
    """The default (compiled, float64) KL search computes the divergences ORT's float32 code does, and
    picks a window that ties with ORT's choice to float32 rounding."""
    rng = np.random.default_rng(2)
    for data in (outlier, rng.laplace(0.0, 1.0, 100_000).astype(np.float32)):
        hist = _stats(data, "signed").hist
        fast = KLCalibration().divergences(hist)
        exact = KLCalibration(ort_compat=True).divergences(hist)
        np.testing.assert_allclose(fast, exact, rtol=1e-3, atol=1e-6)
        assert exact[int(np.argmin(fast))] <= exact.min() * (1 + 1e-5)  # a tie to float32 rounding at most


def _histograms() -> list[np.ndarray]:
    """Signed 2048-bin histograms: smooth, heavy-tailed, Relu-like without its zero bin, sparse."""
    rng = np.random.default_rng(7)
    out = [_stats(rng.laplace(0.0, 1.0, 100_000).astype(np.float32), "signed").hist,
           _stats(rng.normal(3.0, 0.1, 400_000).astype(np.float32), "signed").hist]
    relu = _stats(np.maximum(rng.normal(0.0, 1.0, 200_000), 0.0).astype(np.float32), "signed").hist.copy()
    relu[relu.size // 2] = 0
    sparse = _stats(rng.normal(0.0, 1.0, 300).astype(np.float32), "signed").hist  # mostly empty bins
    return [*out, relu, sparse]


def test_kl_search_without_per_bin_logarithms_equals_the_direct_loop():
    """The default search (prefix sums, a series for the smoothed bins) computes what the window-by-window
    float64 loop does, to rounding, and picks the same window."""
    from vacc_deploy.calibration._kernels import kl_divergences, kl_divergences_direct

    for hist in _histograms():
        fast = kl_divergences(hist.astype(np.int64), 128, 1e-4)
        direct = kl_divergences_direct(hist.astype(np.int64), 128, 1e-4)
        np.testing.assert_allclose(fast, direct, rtol=1e-9)
        assert int(np.argmin(fast)) == int(np.argmin(direct))
