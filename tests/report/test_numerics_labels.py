"""The int8 numerics vocabulary and how reports name each build."""

from __future__ import annotations

import pytest

from vacc_deploy.backends import BuildOptions
from vacc_deploy.backends.ort.options import precision_label
from vacc_deploy.backends.ort import NUMERICS
from vacc_deploy.report.plots import result_label
from vacc_deploy.report.sections import model_label


@pytest.mark.parametrize("precision, numerics, label", [
    ("fp32", None, "fp32"), ("fp16", None, "fp16"), ("int8", None, "int8"),
    ("int8", "onnxruntime", "int8 (onnxruntime)"), ("int8", "vacc", "int8 (vacc, emulated)"),
])
def test_precision_label(precision, numerics, label) -> None:
    assert precision_label(precision, numerics) == label


def test_vocabulary_and_default() -> None:
    assert NUMERICS == ("onnxruntime", "vacc") and BuildOptions().numerics == "onnxruntime"
    assert BuildOptions().weight_scale == "power2"  # TVM's qconfig default


def test_reports_use_the_label() -> None:
    r = {"precision": "int8", "quant": "percentile", "backend": "onnxruntime", "label": "int8 (vacc, emulated)"}
    assert "int8 (vacc, emulated)" in model_label("lesrcnn_x2", r, first=False)
    assert result_label(r) == "onnxruntime int8 (vacc, emulated) percentile"
