"""int8 builds with the fp32 rewrites of vacc_deploy.backends.ort.prepare (--equalize through the
pipeline's equalize stage, --weight-rounding gptq in the build) on a small exported model: settings
recorded, cached, fp32 function kept, bad combinations refused with the option named."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from tests.helpers import noise_images
from vacc_deploy.backends import BuildOptions
from vacc_deploy.backends.ort.build import build_onnxruntime
from vacc_deploy.calibration.ranges import calibration_ranges
from vacc_deploy.config import load_row
from vacc_deploy.errors import UsageError
from vacc_deploy.pipeline import CalibRequest, ModelRequest, build_model, prepare

SHAPE = (1, 3, 32, 32)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    work = tmp_path_factory.mktemp("work")
    imgs = noise_images(tmp_path_factory.mktemp("imgs"))
    config = load_row("lesrcnn_x2")
    req = ModelRequest(weights="synthetic", shape=SHAPE, calib=CalibRequest(images=imgs, num=4),
                       build=BuildOptions(precision="int8", quant="max"))
    return config, req, prepare(config, req, work), work


def _build(env, **opts):
    config, req, up, _ = env
    return build_model(up, req.with_build(**opts))


def _run(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]


def test_equalized_gptq_build(env):
    _, _, up, work = env
    built = _build(env, equalize=True, weight_rounding="gptq")
    plain = _build(env)
    assert built.folder != plain.folder
    m = built.manifest
    assert m["settings"]["equalize"] is True and m["settings"]["weight_rounding"] == "gptq"
    assert m["equalize"]["spaces"] > 0 and m["weight_rounding"]["convs"] > 0
    assert m["weight_rounding"]["median_error_ratio"] <= 1.0
    assert "equalize" not in plain.manifest["settings"] and "weight_rounding" not in plain.manifest["settings"]
    assert sorted(p.name for p in built.folder.iterdir()) == ["manifest.json", "model.onnx", "ranges.json"]
    equalized = list((work / "lesrcnn_x2" / "equalized").glob("model-*.onnx"))
    assert len(equalized) == 1 and m["input_model"] == str(equalized[0])
    x = np.random.default_rng(3).random(SHAPE, dtype=np.float32)
    ref = _run(up.exported.onnx_path, x)
    np.testing.assert_allclose(_run(equalized[0], x), ref, atol=1e-4 * np.abs(ref).max())  # exact in float
    got = _run(built.onnx_path, x)
    assert got.shape == ref.shape and np.isfinite(got).all()
    assert _build(env, equalize=True, weight_rounding="gptq").cached
    # GPTQ alone changes the weights the quantizer reads, not the ranges: another build, same ranges
    gptq = _build(env, weight_rounding="gptq")
    assert gptq.folder not in (built.folder, plain.folder)
    assert gptq.manifest["calibration"] == plain.manifest["calibration"]


@pytest.mark.parametrize("opts,option", [
    ({"weight_rounding": "stochastic"}, "weight_rounding"),
    ({"equalize": True, "numerics": "vacc"}, "equalize"),
    ({"weight_rounding": "gptq", "numerics": "vacc"}, "weight_rounding"),
])
def test_bad_prepare_options(env, opts, option):
    with pytest.raises(UsageError) as err:
        _build(env, **opts)
    assert err.value.option == option


def test_equalize_needs_the_equalize_stage(env):
    """A build asked to equalize but handed the plain export refuses instead of mislabelling it."""
    _, _, up, work = env
    opts = BuildOptions(precision="int8", quant="max", equalize=True)
    ranges = calibration_ranges(up.exported.onnx_path, up.calib, up.exported.spec, "max", opts.percentile,
                                work / "lesrcnn_x2")
    with pytest.raises(UsageError) as err:
        build_onnxruntime(up.exported.onnx_path, opts, row="lesrcnn_x2", ranges=ranges, workdir=work)
    assert err.value.option == "equalize"
