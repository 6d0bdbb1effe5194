"""The backend contract (:mod:`vacc_deploy.backends.base`), run on every backend in the registry:
each available one opens what the build stage makes for it from a tiny model (lesrcnn_x2, synthetic
weights, 1x3x16x16) and returns the documented output, close to ONNX Runtime fp32's; unavailable
ones skip with their reason. The test-only numpy backend joins the suite by one dict entry."""

from __future__ import annotations

import subprocess
import sys
import typing
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.backends.numpy_backend import NumpyBackend
from tests.conftest import REPO
from vacc_deploy.backends import (
    BACKENDS,
    DEFAULT_BACKEND,
    Artifact,
    BuiltModel,
    get_backend,
    open_session,
)
from vacc_deploy.backends import BuildOptions
from vacc_deploy.types import PRECISIONS
from vacc_deploy.config import load_row
from vacc_deploy.errors import BuildError
from vacc_deploy.pipeline import CalibRequest, ModelRequest, build
from vacc_deploy.spec import ModelSpec

ROW, SHAPE = "lesrcnn_x2", (1, 3, 16, 16)
DUMMY = "numpy"  # registered by the ``backend`` fixture: one dict entry
#: How close each precision's output must be to ONNX Runtime fp32's (max |diff|, mean |diff|; the
#: output's std is about 0.5). int8 is loose: synthetic weights calibrated on 3 crops lose ~0.04 on
#: average, so int8 must also match ONNX Runtime's run of the same int8 file (SAME_INT8_FILE). The
#: int8 file has ``reduce_range auto`` weights: 7-bit on x86 CPUs without VNNI, where runtimes' fast
#: int8 kernels saturate 8-bit weights (ONNX Runtime alone switches to exact kernels for them;
#: tests/backends/test_openvino.py measures OpenVINO on 8-bit weights there), 8-bit elsewhere.
TOLERANCE = {"fp32": (1e-4, 1e-5), "fp16": (1e-2, 1e-3), "int8": (0.5, 0.06)}
SAME_INT8_FILE = (0.05, 0.005)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> tuple[Path, Path]:
    """(work folder shared by the module's builds, three calibration images)."""
    root = tmp_path_factory.mktemp("contract")
    calib = root / "calib"
    calib.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        img = cv2.GaussianBlur(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8), (3, 3), 1.0)
        cv2.imwrite(str(calib / f"c{i}.png"), img)
    return root / "w", calib


def _build(work, backend: str, precision: str) -> BuiltModel:
    workdir, calib = work
    req = ModelRequest(weights="synthetic", shape=SHAPE, backend=backend,
                       build=BuildOptions(precision=precision, quant="max" if precision == "int8" else None,
                                          reduce_range="auto"),
                       calib=CalibRequest(images=calib, num=3))
    return build(load_row(ROW), req, workdir)


def _input() -> np.ndarray:
    return np.random.default_rng(1).random(SHAPE, dtype=np.float32)


@pytest.fixture(scope="module")
def reference(work) -> dict[str, np.ndarray]:
    """ONNX Runtime's output for :func:`_input`, per precision."""
    return {p: open_session(DEFAULT_BACKEND, _build(work, DEFAULT_BACKEND, p)).run(_input()) for p in PRECISIONS}


@pytest.fixture(params=[*BACKENDS, DUMMY])
def backend(request, monkeypatch):
    """Each registered backend (skipped, with its reason, when unavailable here)."""
    if request.param == DUMMY:
        monkeypatch.setitem(BACKENDS, DUMMY, NumpyBackend())
    b = get_backend(request.param)
    reason = b.unavailable_reason()
    if reason is not None:
        pytest.skip(f"backend {b.name} unavailable: {reason}")
    return b


def test_declares_itself(backend) -> None:
    assert BACKENDS[backend.name] is backend
    assert backend.short and backend.summary
    assert backend.artifact in typing.get_args(Artifact)
    assert backend.precisions and set(backend.precisions) <= set(PRECISIONS)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_run_contract(backend, precision, work, reference) -> None:
    """Output shape (N, C, H*s, W*s), float32, a fresh array, input untouched, close to ORT fp32 (int8:
    and to ORT's run of the same int8 file)."""
    if precision not in backend.precisions:
        pytest.skip(f"backend {backend.name} runs {', '.join(backend.precisions)} only")
    built = _build(work, backend.name, precision)
    session = open_session(backend.name, built)
    assert session.input_shape in (None, SHAPE)
    x = _input()
    y = session.run(x)
    assert np.array_equal(x, _input())
    assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.shape == (1, 3, 32, 32)
    checks = [(reference["fp32"], TOLERANCE[precision])]
    checks += [(reference["int8"], SAME_INT8_FILE)] if precision == "int8" else []
    for ref, (max_tol, mean_tol) in checks:
        diff = np.abs(y - ref)
        assert diff.max() <= max_tol and diff.mean() <= mean_tol, (diff.max(), diff.mean())
    again = session.run(np.zeros_like(x))
    assert np.array_equal(y, session.run(x)) and not np.shares_memory(y, again)


def test_missing_artifact_is_a_build_error(backend) -> None:
    with pytest.raises(BuildError):
        backend.open(BuiltModel(row=ROW, spec=ModelSpec(scale=2), input_shape=SHAPE))


def test_registration_reaches_the_cli(monkeypatch) -> None:
    """One dict entry: the commands' --backend/--backends choices and the report label follow."""
    from vacc_deploy.cli import build_parser
    from vacc_deploy.cli.benchmark_cmd import configurations
    from vacc_deploy.backends import short_label

    monkeypatch.setitem(BACKENDS, DUMMY, NumpyBackend())
    args = build_parser().parse_args(["eval", ROW, "--dataset", ".", "--backend", DUMMY])
    assert args.backend == DUMMY
    triples = configurations(load_row(ROW), f"{DEFAULT_BACKEND},{DUMMY}", "fp32,int8", "max")
    assert (DUMMY, "int8", "max") in triples and (DEFAULT_BACKEND, "fp32", None) in triples
    assert short_label(DUMMY) == "np"


def test_registry_imports_no_runtime() -> None:
    """Importing the registry and asking every backend whether it can run imports no runtime."""
    code = ("import sys; from vacc_deploy.backends import BACKENDS; [b.unavailable_reason() for b in "
            "BACKENDS.values()]; print(sorted(m for m in ('torch', 'onnxruntime', 'openvino', 'vaststreamx') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(REPO)})
    assert out.stdout.strip() == "[]"
