"""Real-ESRGAN rows with the real weights: both RRDBNet key layouts load through one mapping, and each
row reproduces the ncnn release model's output (``parity/realesrgan/<row>.npz``) through PyTorch and
through the exported ONNX model.

The ONNX exports run once per module, at the parity input's shape (1x3x48x48), only for the rows a
selected test needs, and with one torch thread: tracing a 23-block RRDBNet runs 702 small convs, and
on two cores shared with other work two threads made that several times slower (measured, 2026-11-30).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from tests.models.conftest import REALESRGAN_ROWS, parity_file
from vacc_deploy.backends.ort.session import OrtSession
from vacc_deploy.config import load_row
from vacc_deploy.errors import WeightsError
from vacc_deploy.export import export_row
from vacc_deploy.models import create_model, load_checkpoint
from vacc_deploy.models.rrdbnet import convert_checkpoint as rrdb_convert

REL_TOL = 1e-4  # of the reference output range (parity/README.md)
X4PLUS = "RealESRGAN_x4plus.pth"


def _assert_close(ours: np.ndarray, ref: np.ndarray, what: str) -> None:
    assert ours.shape == ref.shape, what
    span = float(ref.max() - ref.min())
    diff = float(np.abs(ours.astype(np.float64) - ref).max())
    assert diff <= REL_TOL * span, f"{what}: max|ours-ref| = {diff:.3e} > {REL_TOL:g} * {span:.4g}"


@pytest.fixture(scope="module")
def onnx_export(
    tmp_path_factory: pytest.TempPathFactory, weights_dir: Path, parity_dir: Path
) -> Callable[[str, str], Path]:
    """``onnx_export(row, weights_file)``: the row exported at the parity shape with that checkpoint
    (each pair exported once per module)."""
    workdir = tmp_path_factory.mktemp("realesrgan-export")
    shape = tuple(np.load(parity_file(parity_dir, "realesrgan_x4plus"))["input"].shape)
    done: dict[tuple[str, str], Path] = {}

    def export(row: str, weights_file: str) -> Path:
        if (row, weights_file) not in done:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                result = export_row(load_row(row), weights_dir / weights_file, shape, workdir=workdir)
            finally:
                torch.set_num_threads(threads)
            done[(row, weights_file)] = result.onnx_path
        return done[(row, weights_file)]

    return export


@pytest.mark.parametrize("row", REALESRGAN_ROWS)
def test_realesrgan_parity_torch_and_onnx(
    row: str, parity_dir: Path, parity_model: Callable[[str], torch.nn.Module],
    onnx_export: Callable[[str, str], Path],
) -> None:
    data = np.load(parity_file(parity_dir, row))
    with torch.no_grad():
        ours = parity_model(row)(torch.from_numpy(data["input"])).numpy()
    _assert_close(ours, data["output"], f"{row} (PyTorch)")
    onnx_path = onnx_export(row, load_row(row).weights.official.file)
    _assert_close(OrtSession(onnx_path).run(data["input"]), data["output"], f"{row} (ONNX)")


def test_bsrgan_x4_with_realesrgan_checkpoint_exports_the_same_model(
    parity_dir: Path, onnx_export: Callable[[str, str], Path]
) -> None:
    """The x4plus checkpoint on the bsrgan_x4 row is realesrgan_x4plus: same ONNX output, bit for bit."""
    x = np.load(parity_file(parity_dir, "realesrgan_x4plus"))["input"]
    ours = OrtSession(onnx_export("bsrgan_x4", X4PLUS)).run(x)
    theirs = OrtSession(onnx_export("realesrgan_x4plus", X4PLUS)).run(x)
    assert np.array_equal(ours, theirs)


def test_both_rrdbnet_layouts_load_into_bsrgan_x4(weights_dir: Path) -> None:
    """A Real-ESRGAN (BasicSR-key) checkpoint and its KAIR-key twin give the same strict load."""
    config = load_row("bsrgan_x4")
    state = load_checkpoint(weights_dir / X4PLUS, config)
    assert all(v.dtype == torch.float32 for v in state.values())
    model = create_model("bsrgan_x4", state)
    assert list(model.state_dict()) == list(state)  # the mapping keeps the official order
    assert rrdb_convert(dict(model.state_dict()), "state_dict").keys() == state.keys()  # KAIR as is


def test_params_ema_is_preferred_and_basicsr_keys_are_mapped() -> None:
    ema = {"conv_body.weight": torch.ones(1), "body.3.rdb2.conv5.bias": torch.ones(1).half()}
    plain = {"conv_body.weight": torch.zeros(1)}
    state = rrdb_convert({"params": plain, "params_ema": ema}, "state_dict")
    assert state.keys() == {"trunk_conv.weight", "RRDB_trunk.3.RDB2.conv5.bias"}
    assert state["trunk_conv.weight"].item() == 1.0 and state["RRDB_trunk.3.RDB2.conv5.bias"].dtype == torch.float32
    assert rrdb_convert({"params": plain}, "basicsr").keys() == {"trunk_conv.weight"}


def test_unknown_basicsr_key_fails_the_strict_load(weights_dir: Path) -> None:
    obj = torch.load(weights_dir / "RealESRGAN_x4plus_anime_6B.pth", map_location="cpu", weights_only=True)
    state = dict(obj["params_ema"])
    state["conv_extra.weight"] = state.pop("conv_hr.weight")
    with pytest.raises(WeightsError, match="conv_extra.weight"):
        create_model("realesrgan_x4plus_anime_6b", rrdb_convert({"params_ema": state}, "basicsr"))
