"""Everything we write honours the umask (0644 files / 0755 folders under umask 022), although it is
staged through ``tempfile`` names (0600 / 0700) first: reports, JSON files, builds, images, plots."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.graphs import conv_relu_conv_add
from tests.report.sample import sample_report
from vacc_deploy import artifacts
from vacc_deploy.backends import BuildOptions
from vacc_deploy.backends.ort.build import build_onnxruntime
from vacc_deploy.imaging.io import write_image
from vacc_deploy.report.charts import bar_images_per_s
from vacc_deploy.report.render import write_report


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _written(tmp: Path) -> list[Path]:
    """Write one file through each writer; returns what was written."""
    artifacts.atomic_write_json(tmp / "a.json", {"x": 1})
    with artifacts.staged_dir(tmp / "stage") as d:
        (d / "inside.txt").write_text("x")
    write_image(tmp / "img.png", np.zeros((4, 4, 3), np.uint8))
    bar_images_per_s([{"backend": "onnxruntime", "precision": "fp32", "images_per_s": 2.0}], tmp / "plot.png")
    fp16 = build_onnxruntime(conv_relu_conv_add(tmp / "g.onnx"), BuildOptions(precision="fp16"),
                             row="g", workdir=tmp / "w")
    report = tmp / "report"
    write_report(sample_report(tmp / "src", provenance="house"), report)
    return [tmp / "a.json", tmp / "stage", tmp / "stage" / "inside.txt", tmp / "img.png", tmp / "plot.png",
            fp16.model_path, fp16.model_path.parent, fp16.model_path.parent / "manifest.json",
            report / "report.html", report / "report.json", report / "report.md", report / "assets"]


def test_written_files_and_folders_honour_the_umask(tmp_path: Path, umask: int) -> None:
    paths = _written(tmp_path)
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.rglob("*.partial"))
    for p in paths:
        want = (0o777 if p.is_dir() else 0o666) & ~umask
        assert _mode(p) == want, f"{p}: {oct(_mode(p))}, umask {oct(umask)} wants {oct(want)}"


def test_umask_mode_reads_without_changing_it(umask: int) -> None:
    assert artifacts.umask_mode() == 0o666 & ~umask
    assert artifacts.umask_mode(directory=True) == 0o777 & ~umask
    assert os.umask(umask) == umask  # unchanged
