"""End-to-end agreement with ONNX Runtime's own calibrators (``create_calibrator``), which hold all
activations in memory. Ours stream in one pass. With ``ort_compat`` (sessions at
ORT_ENABLE_EXTENDED: activations bit-identical to ORT's optimizations-off sessions) ``max`` ranges
are bit-identical; percentile and kl_divergence ranges are within the bound stated in calibration.stats
(histograms that widen as values arrive, instead of a range pass first). By default (ORT_ENABLE_ALL)
within the bound stated in calibration.collect."""

from __future__ import annotations

import numpy as np
import pytest
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, create_calibrator

from vacc_deploy.calibration import ArraySource, calibrate
from vacc_deploy.calibration.methods import _window_divergence

ORT = {
    "max": (CalibrationMethod.MinMax, {}),
    "percentile": (CalibrationMethod.Percentile, {"num_bins": 2048, "percentile": 99.99}),
    "kl_divergence": (CalibrationMethod.Entropy, {"num_bins": 2048, "num_quantized_bins": 128}),
}


class _Reader(CalibrationDataReader):
    def __init__(self, images):
        self._it = iter([{"x": im} for im in images])

    def get_next(self):
        return next(self._it, None)


def ort_ranges(model, images, method, tmp_path):
    """ORT's ranges and, for histogram methods, its histograms (hist, edges, ...) per tensor."""
    ort_method, extra = ORT[method]
    cal = create_calibrator(model, ["Conv", "Relu", "Add"], str(tmp_path / f"aug_{method}.onnx"),
                            calibrate_method=ort_method, extra_options=extra)
    cal.collect_data(_Reader(images))
    data = cal.compute_data()
    hists = getattr(getattr(cal, "collector", None), "histogram_dict", {})
    return {k: (float(np.asarray(v.range_value[0]).ravel()[0]),
                float(np.asarray(v.range_value[1]).ravel()[0])) for k, v in data.items()}, hists


def _divergence(hist, edges, hi: float) -> float:
    zero = hist.size // 2
    i = int(np.argmin(np.abs(np.asarray(edges) - hi))) - zero - 1
    return _window_divergence(np.asarray(hist), zero - i, zero + i + 1, 128)


@pytest.mark.parametrize("method", ["max", "percentile", "kl_divergence"])
def test_agrees_with_ort_calibrators(tiny_model, images, method, tmp_path):
    ours = calibrate(tiny_model, ArraySource(images), method, progress=False, ort_compat=True).ranges
    theirs, hists = ort_ranges(tiny_model, images, method, tmp_path)
    assert set(theirs) == set(ours)
    for k, (lo, hi) in theirs.items():
        if method == "max":
            assert ours[k] == (lo, hi), (k, ours[k], (lo, hi))
        elif method == "percentile":  # at most one bin of ORT's |x| histogram apart
            edges = hists[k][1]
            assert ours[k] == pytest.approx((lo, hi), abs=float(edges[1] - edges[0]) * 1.0001), k
        else:  # a window whose KL divergence on ORT's histogram is within 0.01 of ORT's choice
            hist, edges = hists[k][0], hists[k][1]
            assert _divergence(hist, edges, ours[k][1]) - _divergence(hist, edges, hi) <= 0.01, k


@pytest.mark.parametrize("method", ["max", "percentile"])
def test_default_level_agrees_with_ort_calibrators_within_its_bound(tiny_model, images, method, tmp_path):
    """Without ``ort_compat`` the sessions run at ORT_ENABLE_ALL, whose activations differ from ORT's
    (optimizations off) by about 1e-5 of each tensor's largest magnitude at most (calibration.collect): ``max``
    ranges within that, percentile ranges still within one bin of ORT's |x| histogram."""
    ours = calibrate(tiny_model, ArraySource(images), method, progress=False).ranges
    theirs, hists = ort_ranges(tiny_model, images, method, tmp_path)
    for k, (lo, hi) in theirs.items():
        scale = max(abs(lo), abs(hi))
        if method == "max":
            assert ours[k] == pytest.approx((lo, hi), rel=0, abs=1e-5 * scale), k
        else:
            width = float(hists[k][1][1] - hists[k][1][0])
            assert ours[k] == pytest.approx((lo, hi), abs=width * 1.0001 + 1e-5 * scale), k
