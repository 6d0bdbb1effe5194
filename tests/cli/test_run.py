"""`vacc-deploy run`: real users' inputs (16-bit, grayscale, RGBA, JPEG), atomic same-name outputs,
and a corrupt image that fails alone (exit 1 at the end, listing it)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vacc_deploy.cli import main

SHAPE = "1x3x32x32"  # a small fixed shape keeps the test fast


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("work")


@pytest.fixture()
def inputs(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "rgb16.png"), rng.integers(0, 65536, (40, 50, 3), dtype=np.uint16))
    cv2.imwrite(str(folder / "gray.png"), rng.integers(0, 256, (30, 20), dtype=np.uint8))
    cv2.imwrite(str(folder / "rgba.png"), rng.integers(0, 256, (24, 36, 4), dtype=np.uint8))
    cv2.imwrite(str(folder / "photo.jpg"), rng.integers(0, 256, (33, 47, 3), dtype=np.uint8))
    return folder


def _run(capsys, folder: Path, out: Path, workdir: Path) -> tuple[int, str]:
    code = main(["run", "lesrcnn_x2", "--weights", "synthetic", "--shape", SHAPE, "--input", str(folder),
                 "--output", str(out), "--workdir", str(workdir)])
    return code, capsys.readouterr().err


def test_run_handles_user_formats(capsys, inputs, tmp_path, workdir) -> None:
    out = tmp_path / "out"
    code, err = _run(capsys, inputs, out, workdir)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["gray.png", "photo.jpg", "rgb16.png", "rgba.png"]
    rgb16 = cv2.imread(str(out / "rgb16.png"), cv2.IMREAD_UNCHANGED)
    assert rgb16.dtype == np.uint16 and rgb16.shape == (80, 100, 3)
    gray = cv2.imread(str(out / "gray.png"), cv2.IMREAD_UNCHANGED)
    assert gray.shape == (60, 40)
    rgba = cv2.imread(str(out / "rgba.png"), cv2.IMREAD_UNCHANGED)
    assert rgba.shape == (48, 72, 4)
    src_alpha = cv2.imread(str(inputs / "rgba.png"), cv2.IMREAD_UNCHANGED)[..., 3]
    expect = cv2.resize(src_alpha.astype(np.float32) / 255, (72, 48), interpolation=cv2.INTER_CUBIC)
    assert np.max(np.abs(rgba[..., 3] / 255.0 - np.clip(expect, 0, 1))) <= 1 / 255 + 1e-6
    assert cv2.imread(str(out / "photo.jpg")).shape == (66, 94, 3)


def test_corrupt_image_fails_alone(capsys, inputs, tmp_path, workdir) -> None:
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    out = tmp_path / "out"
    code, err = _run(capsys, inputs, out, workdir)
    assert code == 1
    assert "broken.png" in err and "Traceback" not in err
    assert "1 failed" in err
    assert sorted(p.name for p in out.iterdir()) == ["gray.png", "photo.jpg", "rgb16.png", "rgba.png"]
    assert not list(out.glob(".*"))  # no temporary files left


def test_single_file_and_missing_input(capsys, inputs, tmp_path, workdir) -> None:
    out = tmp_path / "one"
    code, _ = _run(capsys, inputs / "gray.png", out, workdir)
    assert code == 0 and [p.name for p in out.iterdir()] == ["gray.png"]
    code, err = _run(capsys, tmp_path / "nothing", out, workdir)
    assert code == 2 and "no such file or folder" in err
