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


@pytest.mark.skipif(get_backend("openvino").unavailable_reason() is not None, reason="openvino is not installed")
def test_8bit_weights_on_cpus_without_vnni_are_said_and_7bit_ones_run_exactly(tmp_path, caplog) -> None:
    """On x86 without VNNI OpenVINO's int8 kernels saturate int16 pair sums: it says so when it opens
    an 8-bit-weight file (still close to ONNX Runtime's exact run), and runs a 7-bit file like ONNX
    Runtime. Elsewhere nothing is said and both files stay within the int8 contract's bound of ONNX
    Runtime's run: with VNNI (AVX-512, 2026-12-03) the two runtimes place the requantization
    roundings differently (each is as far from the float-reference QDQ run as from the other: max
    0.013-0.015, mean 0.0009-0.0015 on this model), so they agree closely, not exactly."""
    import logging

    import cv2
    import numpy as np

    from vacc_deploy.backends import BuildOptions, open_session
    from vacc_deploy.backends.openvino import SATURATION_NOTE
    from vacc_deploy.config import load_row
    from vacc_deploy.machine import x86_without_vnni
    from vacc_deploy.pipeline import CalibRequest, ModelRequest, build

    calib = tmp_path / "c"
    calib.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        img = cv2.GaussianBlur(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8), (3, 3), 1.0)
        cv2.imwrite(str(calib / f"c{i}.png"), img)
    x = np.random.default_rng(1).random((1, 3, 16, 16), dtype=np.float32)
    saturating = x86_without_vnni()
    for bits, reduce_range in ((8, "off"), (7, "on")):
        req = ModelRequest(weights="synthetic", shape=(1, 3, 16, 16), calib=CalibRequest(images=calib, num=3),
                           build=BuildOptions(precision="int8", quant="max", reduce_range=reduce_range))
        built = build(load_row("lesrcnn_x2"), req, tmp_path / "w")
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            got = open_session("openvino", built).run(x)
        diff = np.abs(got - open_session("onnxruntime", built).run(x))
        said = SATURATION_NOTE in caplog.text
        if bits == 8 and saturating:
            assert said and diff.mean() < 0.02, diff.mean()  # differs, within the int8 contract's bound
        elif saturating:
            assert not said and diff.max() < 1e-4, diff.max()  # 7-bit weights: the same exact sums
        else:
            assert not said and diff.mean() < 0.02, diff.mean()
