"""End-to-end agreement with ONNX Runtime's own calibrators (``create_calibrator``), which hold all
activations in memory. Ours stream, with the same session settings (graph optimizations off), and
the ranges are bit-identical."""

from __future__ import annotations

import numpy as np
import pytest
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, create_calibrator

from vacc_deploy.quant import ArraySource, calibrate

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
    ort_method, extra = ORT[method]
    cal = create_calibrator(model, ["Conv", "Relu", "Add"], str(tmp_path / f"aug_{method}.onnx"),
                            calibrate_method=ort_method, extra_options=extra)
    cal.collect_data(_Reader(images))
    data = cal.compute_data()
    return {k: (float(np.asarray(v.range_value[0]).ravel()[0]),
                float(np.asarray(v.range_value[1]).ravel()[0])) for k, v in data.items()}


@pytest.mark.parametrize("method", ["max", "percentile", "kl_divergence"])
def test_agrees_with_ort_calibrators(tiny_model, images, method, tmp_path):
    ours = calibrate(tiny_model, ArraySource(images), method, progress=False, ort_compat=True).ranges
    theirs = ort_ranges(tiny_model, images, method, tmp_path)
    assert set(theirs) == set(ours)
    for k, (lo, hi) in theirs.items():
        assert ours[k] == (lo, hi), (k, ours[k], (lo, hi))
