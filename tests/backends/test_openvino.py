"""The OpenVINO backend's own behaviour (its run contract is in test_contract.py): it says why
when openvino is missing, and only a session imports openvino."""

from __future__ import annotations

import sys

import pytest

from vacc_deploy.backends import BuiltModel, get_backend
from vacc_deploy.backends.openvino import INSTALL_HINT, compile_config
from vacc_deploy.errors import BackendUnavailable
from vacc_deploy.spec import ModelSpec


def test_missing_openvino_is_reported_with_the_install_hint(monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino now fails
    backend = get_backend("openvino")
    reason = backend.unavailable_reason()
    assert reason is not None and INSTALL_HINT in reason
    built = BuiltModel(row="r", spec=ModelSpec(scale=2), input_shape=(1, 3, 8, 8), onnx_path=tmp_path / "m.onnx")
    with pytest.raises(BackendUnavailable, match="openvino"):
        backend.open(built)


def test_unavailable_backend_fails_before_building(monkeypatch) -> None:
    from vacc_deploy.config import load_row
    from vacc_deploy.pipeline import ModelRequest, upscaler_for

    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(BackendUnavailable, match=r"backend openvino cannot run here: openvino is not installed"):
        upscaler_for(load_row("lesrcnn_x2"), ModelRequest(weights="synthetic", backend="openvino"), None)


@pytest.mark.parametrize("threads", [None, 1, 3])
def test_compile_config_is_f32_latency_with_the_threads_asked(threads) -> None:
    cfg = compile_config(threads)
    assert cfg["INFERENCE_PRECISION_HINT"] == "f32" and cfg["PERFORMANCE_HINT"] == "LATENCY"
    assert cfg["INFERENCE_NUM_THREADS"] == (threads or cfg["INFERENCE_NUM_THREADS"]) >= 1
