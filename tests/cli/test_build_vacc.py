"""`vacc-deploy build --backend vacc|auto` end to end through the CLI, with the stand-in vamc on
PATH (it validates the YAML as the real compiler would receive it), and without it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from vacc_deploy.cli import main

STANDINS = Path(__file__).resolve().parents[1] / "backends" / "standins"
ROWS = ["lesrcnn_x2", "bicubic_pp_x3", "edsr_baseline_x2"]  # one per pre-processing convention
SHAPE = "1x3x32x32"


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("calib")
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(d / f"{i}.png"), rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    return d


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("work")


def _with_vamc(monkeypatch, present: bool) -> None:
    base = [p for p in os.environ.get("PATH", "").split(os.pathsep) if not (Path(p) / "vamc").exists()]
    extra = [str(STANDINS), str(Path(sys.executable).parent)] if present else []
    monkeypatch.setenv("PATH", os.pathsep.join(extra + base))


def _build(capsys, row, work, images, *extra) -> tuple[int, str, str]:
    code = main(["build", row, "--weights", "synthetic", "--shape", SHAPE, "--calib-images", str(images),
                 "--num", "4", "--workdir", str(work), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def _yaml_of(out: str) -> dict:
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("yaml"))
    return yaml.safe_load(Path(line.split(None, 1)[1]).read_text())


@pytest.mark.parametrize("row", ROWS)
def test_int8_build_accepted_by_vamc(row, monkeypatch, capsys, work, images) -> None:
    _with_vamc(monkeypatch, True)
    code, out, err = _build(capsys, row, work, images, "--backend", "vacc", "--precision", "int8", "--quant", "percentile")
    assert code == 0, err
    doc = _yaml_of(out)
    assert doc["backend"]["quantize"]["calibrate_mode"] == "percentile"
    assert doc["dataset"]["sampler"]["get_data_num"] == 4
    compiled = Path(next(ln for ln in out.splitlines() if "compiled" in ln).split()[-1])
    assert sorted(p.suffix for p in compiled.iterdir()) == [".json", ".params", ".so"]


def test_fp16_build_has_no_quantize_or_dataset(monkeypatch, capsys, work, images) -> None:
    _with_vamc(monkeypatch, True)
    code, out, err = _build(capsys, "lesrcnn_x2", work, images, "--backend", "vacc", "--precision", "fp16")
    assert code == 0, err
    doc = _yaml_of(out)
    assert "quantize" not in doc["backend"] and "dataset" not in doc


def test_skip_layers_reach_the_yaml(monkeypatch, capsys, work, images) -> None:
    _with_vamc(monkeypatch, True)
    code, out, err = _build(capsys, "lesrcnn_x2", work, images, "--backend", "vacc", "--precision", "int8",
                            "--quant", "kl_divergence", "--skip-layers", "0,/conv18/conv18.0/Conv")
    assert code == 0, err
    assert _yaml_of(out)["backend"]["quantize"]["skip_conv_layers"] == [0, 1, 24, 25]  # with the edge convs


def test_auto_falls_back_with_one_line_reason(monkeypatch, capsys, work, images) -> None:
    _with_vamc(monkeypatch, False)
    code, out, err = _build(capsys, "lesrcnn_x2", work, images, "--backend", "auto", "--precision", "int8",
                            "--quant", "max")
    assert code == 0, err
    reason = [ln for ln in err.splitlines() if ln.startswith("backend auto:")]
    assert len(reason) == 1 and "using onnxruntime" in reason[0] and "vamc not found" in reason[0]
    assert "vamc compile" in out and "(onnxruntime): built" in out or "reused" in out
    assert _yaml_of(out)["backend"]["dtype"] == "int8"  # the YAML is written for a VACC host anyway


def test_vacc_without_vamc_fails_clearly(monkeypatch, capsys, work, images) -> None:
    _with_vamc(monkeypatch, False)
    code, _, err = _build(capsys, "lesrcnn_x2", work, images, "--backend", "vacc", "--precision", "fp16")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 1 and len(lines) == 1 and "vamc not found on PATH" in lines[0] and "Traceback" not in err


def test_onnxruntime_path_never_imports_vaststreamx(work, images, tmp_path) -> None:
    """`run` of an exported model imports neither the vendor SDK nor torch."""
    from vacc_deploy.config import load_row
    from vacc_deploy.export import export_row

    export_row(load_row("lesrcnn_x2"), "synthetic", (1, 3, 32, 32), workdir=work)  # torch only here
    img = tmp_path / "x.png"
    cv2.imwrite(str(img), np.zeros((20, 20, 3), np.uint8))
    code = (
        "import sys; from vacc_deploy.cli import main;"
        f"rc = main(['run', 'lesrcnn_x2', '--weights', 'synthetic', '--shape', '{SHAPE}', '--input', r'{img}',"
        f" '--output', r'{tmp_path / 'out'}', '--workdir', r'{work}']);"
        "assert rc == 0; assert 'vaststreamx' not in sys.modules, 'vaststreamx imported';"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    env = {**os.environ, "PYTHONPATH": str(STANDINS)}  # even when a vaststreamx module is importable
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]


def test_int8_vacc_without_vamc_builds_the_emulated_vacc_numerics(monkeypatch, capsys, work, images) -> None:
    _with_vamc(monkeypatch, False)
    code, out, err = _build(capsys, "lesrcnn_x2", work, images, "--backend", "vacc", "--precision", "int8",
                            "--quant", "percentile", "--int8-edges", "--skip-layers", "3", "--weight-scale", "max")
    assert code == 0, err
    assert "int8 (vacc, emulated) percentile (onnxruntime)" in out and "vamc not found" in err
    q = _yaml_of(out)["backend"]["quantize"]
    assert q["skip_conv_layers"] == [3] and q["weight_scale"] == "max"
    model = Path(next(ln for ln in out.splitlines() if ln.strip().startswith("model")).split()[-1])
    manifest = yaml.safe_load((model.parent / "manifest.json").read_text())
    assert manifest["settings"]["numerics"] == "vacc" and manifest["float_layer_indices"] == [3]


def test_official_mean_shifts_become_bias_adds_in_the_graph_vamc_gets(monkeypatch, capsys, work, images,
                                                                      weights_dir) -> None:
    """LESRCNN's official sub_mean / add_mean are identity 1x1 convs: the card graph writes them as
    bias adds, so the YAML's model has 24 Convs and the default float edges are conv1 and conv18."""
    import onnx

    _with_vamc(monkeypatch, True)
    code, out, err = _build(capsys, "lesrcnn_x2", work, images, "--weights", str(weights_dir / "lesrcnn_x2.pth"),
                            "--backend", "vacc", "--precision", "int8", "--quant", "percentile")
    assert code == 0, err
    doc = _yaml_of(out)
    model = onnx.load(doc["frontend"]["checkpoint"])
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
    assert len(convs) == 24 and convs[0] == "/conv1/conv1.0/Conv" and convs[-1] == "/conv18/conv18.0/Conv"
    assert doc["backend"]["quantize"]["skip_conv_layers"] == [0, 23]
