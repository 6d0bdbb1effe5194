"""`vacc-deploy eval`: SPEC section 6 JSON, both protocols, HR-only datasets (LR made by MATLAB
bicubic), several precisions with fidelity to fp32."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from vacc_deploy.cli import main

RESULT_KEYS = {"precision", "quant", "backend", "psnr", "ssim", "delta_psnr", "delta_ssim", "fidelity_psnr"}


@pytest.fixture(scope="module")
def hr_only(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("hr")
    rng = np.random.default_rng(0)
    for i in range(2):
        img = cv2.GaussianBlur(rng.integers(0, 256, (50, 44, 3), dtype=np.uint8), (7, 7), 2)
        cv2.imwrite(str(d / f"im{i}.png"), img)
    return d


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("work")


@pytest.mark.parametrize("protocol", ["standard", "vendor"])
def test_eval_json(protocol, hr_only, work, tmp_path, capsys) -> None:
    out = tmp_path / "r.json"
    code = main(["eval", "lesrcnn_x2", "--weights", "synthetic", "--shape", "1x3x32x32", "--dataset", str(hr_only),
                 "--protocol", protocol, "--json", str(out), "--workdir", str(work)])
    assert code == 0, capsys.readouterr().err
    doc = json.loads(out.read_text())
    assert {"row", "dataset", "protocol", "n_images", "results", "per_image"} <= set(doc)
    assert doc["protocol"] == protocol and doc["n_images"] == 2 and len(doc["per_image"]) == 2
    assert RESULT_KEYS <= set(doc["results"][0]) and doc["results"][0]["fidelity_psnr"] == "inf"
    assert "fp32" in capsys.readouterr().out


def test_eval_precisions_and_fidelity(hr_only, work, tmp_path, capsys) -> None:
    out = tmp_path / "r.json"
    code = main(["eval", "lesrcnn_x2", "--weights", "synthetic", "--shape", "1x3x32x32", "--dataset", str(hr_only),
                 "--precisions", "fp32,fp16,int8", "--quant", "max,percentile", "--calib-images", str(hr_only),
                 "--num", "3", "--json", str(out), "--workdir", str(work)])
    assert code == 0, capsys.readouterr().err
    res = json.loads(out.read_text())["results"]
    assert [(r["precision"], r["quant"]) for r in res] == [("fp32", None), ("fp16", None), ("int8", "max"),
                                                            ("int8", "percentile")]
    assert all(isinstance(r["fidelity_psnr"], float) for r in res[1:])
    assert res[0]["delta_psnr"] == 0.0


def test_eval_unknown_precision(hr_only, work, capsys) -> None:
    code = main(["eval", "lesrcnn_x2", "--weights", "synthetic", "--dataset", str(hr_only), "--precisions", "int4",
                 "--workdir", str(work)])
    assert code == 2 and "int4" in capsys.readouterr().err


def test_eval_both_int8_numerics_labelled(hr_only, work, tmp_path, capsys) -> None:
    out = tmp_path / "r.json"
    code = main(["eval", "lesrcnn_x2", "--weights", "synthetic", "--shape", "1x3x32x32", "--dataset", str(hr_only),
                 "--precisions", "fp32,int8", "--quant", "max", "--numerics", "onnxruntime,vacc",
                 "--calib-images", str(hr_only), "--num", "3", "--json", str(out), "--workdir", str(work)])
    printed = capsys.readouterr().out
    assert code == 0
    res = json.loads(out.read_text())["results"]
    assert [(r["precision"], r["numerics"], r["label"]) for r in res] == [
        ("fp32", None, "fp32"), ("int8", "onnxruntime", "int8 (onnxruntime)"),
        ("int8", "vacc", "int8 (vacc, emulated)")]
    assert res[1]["psnr"] != res[2]["psnr"]  # two different int8 models
    assert "int8 (onnxruntime)" in printed and "int8 (vacc, emulated)" in printed


def test_eval_unknown_numerics(hr_only, work, capsys) -> None:
    code = main(["eval", "lesrcnn_x2", "--weights", "synthetic", "--shape", "1x3x32x32", "--dataset", str(hr_only),
                 "--precisions", "int8", "--quant", "max", "--numerics", "tpu", "--calib-images", str(hr_only),
                 "--num", "3", "--workdir", str(work)])
    assert code != 0 and "--numerics tpu" in capsys.readouterr().err


def test_eval_with_a_target_lists_the_searched_build_once(hr_only, work, tmp_path, capsys) -> None:
    """A target replaces the asked methods by the search's choice: two asked methods, one int8 row."""
    out = tmp_path / "r.json"
    code = main(["eval", "lesrcnn_x2", "--weights", "synthetic", "--shape", "1x3x32x32", "--dataset", str(hr_only),
                 "--precisions", "fp32,int8", "--quant", "percentile,kl_divergence", "--target-fidelity", "1",
                 "--max-float-layers", "0", "--calib-images", str(hr_only), "--num", "3", "--json", str(out),
                 "--workdir", str(work)])
    assert code == 0, capsys.readouterr().err
    res = json.loads(out.read_text())["results"]
    assert [r["precision"] for r in res] == ["fp32", "int8"] and res[1]["fidelity_psnr"] > 1
