"""The whole flow: every stage cached (a second run does no work), a report that is written, and a
run interrupted during calibration that a rerun completes with identical results."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from vacc_deploy.cli import main


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    ev, cal = root / "eval", root / "calib"
    ev.mkdir()
    cal.mkdir()
    for i in range(2):
        img = cv2.GaussianBlur(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), (5, 5), 1.5)
        cv2.imwrite(str(ev / f"hr{i}.png"), img)
        cv2.imwrite(str(cal / f"c{i}.png"), rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    return ev, cal


def _args(data, work: Path) -> list[str]:
    ev, cal = data
    return ["pipeline", "lesrcnn_x2", "--weights", "synthetic", "--shape", "1x3x32x32", "--dataset", str(ev),
            "--calib-images", str(cal), "--num", "3", "--precisions", "fp32,int8", "--quant", "max",
            "--iters", "2", "--warmup", "1", "--workdir", str(work)]


def _eval_json(work: Path) -> dict:
    files = sorted((work / "lesrcnn_x2" / "eval").glob("*.json"))
    assert len(files) == 1
    return json.loads(files[0].read_text())


def test_pipeline_runs_then_reuses_everything(data, tmp_path, capsys) -> None:
    work = tmp_path / "w"
    assert main(_args(data, work)) == 0
    out = capsys.readouterr().out
    assert "report:" in out
    html = work / "lesrcnn_x2" / "report" / "report.html"
    assert html.is_file() and "SYNTHETIC" in html.read_text().upper()
    assert (work / "lesrcnn_x2" / "report" / "report.md").is_file()
    assert main(_args(data, work)) == 0
    assert "nothing to do, every stage reused" in capsys.readouterr().out


def test_interrupted_calibration_rerun_is_identical(data, tmp_path, monkeypatch, capsys) -> None:
    import vacc_deploy.calibration as quant

    clean = tmp_path / "clean"
    assert main(_args(data, clean)) == 0
    work = tmp_path / "interrupted"
    real = quant.calibrate

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(quant, "calibrate", interrupt)
    assert main(_args(data, work)) == 130
    assert not list((work / "lesrcnn_x2").rglob("ranges/*.json"))
    monkeypatch.setattr(quant, "calibrate", real)
    assert main(_args(data, work)) == 0
    capsys.readouterr()
    a, b = _eval_json(clean), _eval_json(work)
    assert a["results"] == b["results"] and a["per_image"] == b["per_image"]


def test_log_is_plain_and_skipped_stages_say_so(data, tmp_path, capsys) -> None:
    """Not a terminal (capsys): one line per stage, no carriage returns or escape codes; stages this
    run does not have are "skipped", not "reused"; the report names the weights apart from the row
    and keeps a label out of the sha256 field."""
    work = tmp_path / "w"
    args = _args(data, work)
    args[args.index("fp32,int8")] = "fp32"
    assert main([*args, "--no-benchmark"]) == 0
    out, err = capsys.readouterr()
    assert "\r" not in out + err and "\x1b" not in out + err
    for stage in ("data", "export", "build", "eval", "report"):
        assert sum(line.split()[0] == stage for line in err.splitlines() if line.strip()) == 1, err
    report = json.loads((work / "lesrcnn_x2" / "report" / "report.json").read_text())
    status = {s["stage"]: s["status"] for s in report["stages"]}
    assert status["benchmark"] == status["calibrate"] == status["analyze"] == "skipped"
    assert "weights_sha256" not in report["manifest"]["hashes"] and report["weights_sha256"] is None
    assert report["manifest"]["weights"].startswith("synthetic-v1")
    page = (work / "lesrcnn_x2" / "report" / "report.md").read_text()
    assert "**Weights:** synthetic weights" in page and "official" not in report["description"]
    assert main([*args, "--no-benchmark", "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert all(line.startswith("WARNING: SYNTHETIC") for line in err.splitlines()) and "report:" in out
