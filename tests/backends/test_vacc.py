"""VACC backend tests against the test-only stand-ins in ``tests/backends/standins``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper

from vacc_deploy.backends.vacc import session as vacc
from vacc_deploy.backends.vacc.session import (
    VaccSession,
    compile_vamc,
    vacc_available,
    write_vamc_files,
)
from vacc_deploy.config import available_rows, load_row
from vacc_deploy.errors import BackendUnavailable, BuildError, UsageError
from vacc_deploy.spec import ModelSpec

STANDINS = Path(__file__).resolve().parent / "standins"
REPO = Path(__file__).resolve().parents[2]


def spec_for(config) -> ModelSpec:
    """The row's conventions, written out here (family modules are not imported in these tests)."""
    scale = int(config.params.get("scale", 1))
    if config.arch == "bicubic_pp":
        return ModelSpec(scale=scale, channel_order="BGR", size_multiple=2)
    if config.arch == "edsr":
        return ModelSpec(scale=scale, value_range=255.0)
    return ModelSpec(scale=scale)


def fake_onnx(path: Path, shape, input_name: str = "input") -> Path:
    """A one-node ONNX model with the given input name and fixed shape."""
    x = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, list(shape))
    graph = helper.make_graph([helper.make_node("Identity", [input_name], ["output"])], "g", [x], [y])
    onnx.save(helper.make_model(graph), str(path))
    return path


def _png(path: Path, h: int = 8, w: int = 8) -> None:
    """Write a tiny valid RGB PNG without any imaging library."""
    raw = b"".join(b"\x00" + bytes((x * 31 + y * 7) % 256 for x in range(w * 3)) for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        body = tag + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes((8, 2, 0, 0, 0))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


@pytest.fixture()
def calib_dir(tmp_path: Path) -> Path:
    d = tmp_path / "calib"
    d.mkdir()
    for i in range(4):
        _png(d / f"img{i:02d}.png")
    return d


@pytest.fixture()
def standin_path(monkeypatch) -> None:
    # the stand-in runs under ``python3`` from PATH: make that this interpreter (it has onnx + yaml)
    path = os.pathsep.join([str(STANDINS), str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    monkeypatch.setenv("PATH", path)
    monkeypatch.delenv("VAMC_STANDIN_SLEEP", raising=False)


def _files(tmp_path: Path, row: str, precision: str, calib: Path | None, **kw):
    config = load_row(row)
    onnx_path = fake_onnx(tmp_path / f"{row}.onnx", config.input_shape)
    return config, write_vamc_files(config, spec_for(config), onnx_path, "input", config.input_shape,
                                    precision, tmp_path / "build", calib_dir=calib, calib_num=3, **kw)


@pytest.mark.parametrize("row", available_rows())
def test_int8_percentile_compiles_with_standin(row, tmp_path, calib_dir, standin_path):
    config, files = _files(tmp_path, row, "int8", calib_dir, quant="percentile")
    doc = yaml.safe_load(files.yaml_path.read_text())
    assert doc["backend"]["quantize"] == {"calibrate_mode": "percentile", "quantize_per_channel": True,
                                          "weight_scale": "power2", "skip_conv_layers": []}  # [] written: absent = [0]
    assert doc["dataset"]["sampler"] == {"suffix": "png", "get_data_num": 3}
    assert doc["frontend"]["shape"] == {"input": list(config.input_shape)}
    ops = doc["dataset"]["process_ops"]
    assert ops[1] == {"type": "Resize", "size": list(config.input_shape[2:])}
    assert ops[2]["div255"] is (config.arch != "edsr")
    assert ("to_rgb" in ops[0]) is (config.arch == "bicubic_pp")
    vdsp = json.loads(files.vdsp_json.read_text())
    assert vdsp["OpType"] == "FUSION_OP_RGB_RESIZE_CVTCOLOR_NORM_TENSOR"
    assert vdsp["OpConfig"]["NormaType"] == ("EQUAL" if config.arch == "edsr" else "DIV255")
    assert vdsp["OpConfig"]["OimageHeight"] == config.input_shape[2]
    out = compile_vamc(files.yaml_path, timeout_s=60, log_path=tmp_path / "vamc.log")
    assert out == files.deploy_dir
    assert {p.name for p in out.iterdir()} == {"mod.so", "mod.json", "mod.params"}
    assert "wrote" in (tmp_path / "vamc.log").read_text()


def test_fp16_has_no_quantize_or_dataset(tmp_path, standin_path):
    _, files = _files(tmp_path, "lesrcnn_x2", "fp16", None)
    doc = yaml.safe_load(files.yaml_path.read_text())
    assert "quantize" not in doc["backend"] and "dataset" not in doc
    assert files.name == "lesrcnn_x2_fp16"
    compile_vamc(files.yaml_path, timeout_s=60, log_path=tmp_path / "log.txt")


def test_extras_and_skip_layers(tmp_path, calib_dir):
    _, files = _files(tmp_path, "edsr_mx2", "int8", calib_dir, quant="kl_divergence",
                      per_channel=False, skip_conv_layers=[0, 5])
    doc = yaml.safe_load(files.yaml_path.read_text())
    assert doc["backend"]["compile"] == {"data_transport_mode": 1, "enable_graph_partition": True}
    assert doc["backend"]["quantize"]["skip_conv_layers"] == [0, 5]
    assert files.name == "edsr_mx2_int8_kl_divergence_pertensor_skip0-5"


def test_usage_errors(tmp_path, calib_dir):
    with pytest.raises(UsageError, match="calib"):
        _files(tmp_path, "lesrcnn_x2", "int8", None)
    with pytest.raises(UsageError, match="percentile, kl_divergence, max, mse"):
        _files(tmp_path, "lesrcnn_x2", "int8", calib_dir, quant="entropy")
    with pytest.raises(UsageError, match="get_data_num"):
        config = load_row("lesrcnn_x2")
        write_vamc_files(config, spec_for(config), fake_onnx(tmp_path / "m.onnx", config.input_shape),
                         "input", config.input_shape, "int8", tmp_path / "b", calib_dir=calib_dir,
                         calib_num=50)


def test_failing_compile_raises_with_log_tail(tmp_path, calib_dir, standin_path):
    _, files = _files(tmp_path, "bsrgan_x2", "int8", calib_dir)
    doc = yaml.safe_load(files.yaml_path.read_text())
    doc["frontend"]["shape"] = {"not_an_input": [1, 3, 128, 128]}
    files.yaml_path.write_text(yaml.safe_dump(doc))
    with pytest.raises(BuildError, match="not_an_input") as info:
        compile_vamc(files.yaml_path, timeout_s=60, log_path=tmp_path / "fail.log")
    assert "exit code 1" in str(info.value)


def test_compile_timeout_kills(tmp_path, standin_path, monkeypatch):
    _, files = _files(tmp_path, "lesrcnn_x3", "fp16", None)
    monkeypatch.setenv("VAMC_STANDIN_SLEEP", "30")
    with pytest.raises(BuildError, match="timed out"):
        compile_vamc(files.yaml_path, timeout_s=1.5, log_path=tmp_path / "t.log")
    assert not files.deploy_dir.exists()


def test_unavailable_without_vamc(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    ok, reason = vacc_available()
    assert not ok and "vamc not found on PATH" in reason
    with pytest.raises(BackendUnavailable, match="vamc not found on PATH"):
        compile_vamc(tmp_path / "x.yaml", timeout_s=1, log_path=tmp_path / "l.log")


def test_available_with_standins(standin_path, monkeypatch):
    monkeypatch.syspath_prepend(str(STANDINS))
    ok, reason = vacc_available()
    assert ok, reason
    assert "vaststreamx" not in sys.modules or getattr(sys.modules["vaststreamx"], "__standin__", 0)


def test_session_runs_with_standin_sdk(tmp_path, calib_dir, standin_path, monkeypatch):
    config, files = _files(tmp_path, "lesrcnn_x4", "int8", calib_dir)
    model_dir = compile_vamc(files.yaml_path, timeout_s=60, log_path=tmp_path / "c.log")
    info = json.loads((model_dir / "mod.json").read_text())
    (model_dir / "mod.json").write_text(json.dumps({**info, "scale": 4}))
    monkeypatch.syspath_prepend(str(STANDINS))
    monkeypatch.delitem(sys.modules, "vaststreamx", raising=False)
    session = VaccSession(model_dir, files.vdsp_json, config.input_shape, batch_size=2)
    batch = np.random.default_rng(0).random((3, 3, 128, 128), dtype=np.float32)
    out = session.run(batch)
    assert out.shape == (3, 3, 512, 512) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, :, ::4, ::4], batch.astype(np.float16), rtol=0, atol=0)
    assert [c for c in sys.modules["vaststreamx"].calls if c[0] == "run_sync"] == [
        ("run_sync", 2), ("run_sync", 1)]
    with pytest.raises(UsageError):
        session.run(batch[:, :, :64])
    session.close()


def test_session_without_sdk(tmp_path, monkeypatch):
    d = tmp_path / "m"
    d.mkdir()
    for s in (".so", ".json", ".params"):
        (d / f"mod{s}").write_text("{}")
    monkeypatch.setitem(sys.modules, "vaststreamx", None)  # import fails
    with pytest.raises(BackendUnavailable, match="vaststreamx"):
        VaccSession(d, None, (1, 3, 8, 8))


def test_import_does_not_import_vaststreamx():
    code = ("import sys; sys.path.insert(0, %r); import vacc_deploy.backends.vacc.session; "
            "assert 'vaststreamx' not in sys.modules; assert 'torch' not in sys.modules" % str(STANDINS))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    assert vacc.MODEL_PREFIX == "mod"
