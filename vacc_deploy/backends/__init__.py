"""Backends that run a built model behind one session interface. Torch-free; nothing of a vendor
SDK is imported here.

:data:`BACKENDS` maps a backend name to the module that implements it (a plain dict; the module is
imported only when that backend is used). A backend module provides
``open_session(built: BuiltModel, options: SessionOptions) -> Session``. Adding a backend = one
module + one line here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Protocol

import numpy as np

from vacc_deploy.errors import UsageError
from vacc_deploy.spec import ModelSpec

BACKENDS: dict[str, str] = {
    "torch": "vacc_deploy.backends.torch_session",
    "onnxruntime": "vacc_deploy.backends.ort",
    "vacc": "vacc_deploy.backends.vacc",
}


class Session(Protocol):
    """What every backend's session offers.

    ``input_shape``: the fixed (N, C, H, W) input, or None when any size is accepted (PyTorch).
    ``run(batch)``: float32 NCHW batch, pre-processed as the model expects → float32 NCHW output.
    """

    input_shape: tuple[int, ...] | None

    def run(self, batch: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class SessionOptions:
    """Runtime options: CPU threads (ORT/torch), VACC device id, batch size."""

    threads: int | None = None
    device_id: int = 0
    batch_size: int = 1


@dataclass(frozen=True)
class BuiltModel:
    """The artifact a session runs: what the build stage produced for one precision.

    ``onnx_path`` is the ONNX model (ORT); ``vacc_dir``/``vdsp_json`` the vamc output (VACC);
    ``config``/``weights`` let the torch backend rebuild the reference module. ``label`` describes the
    weights for reports (official / synthetic / file).
    """

    row: str
    spec: ModelSpec
    input_shape: tuple[int, int, int, int]
    precision: str = "fp32"
    quant: str | None = None
    weights: str | None = None
    label: str = ""
    onnx_path: Path | None = None
    vacc_dir: Path | None = None
    vdsp_json: Path | None = None
    config: object | None = None  # the RowConfig (torch backend rebuilds the module from it)
    numerics: str | None = None  # int8: whose arithmetic (vacc_deploy.build.Numerics)


def backend_module(name: str) -> ModuleType:
    """Import and return a backend's module. Raises UsageError for an unknown name."""
    if name not in BACKENDS:
        raise UsageError(f"unknown backend '{name}' (known: {', '.join(BACKENDS)})")
    return importlib.import_module(BACKENDS[name])


def open_session(name: str, built: BuiltModel, options: SessionOptions = SessionOptions()) -> Session:
    """Open a session of backend ``name`` on ``built``."""
    return backend_module(name).open_session(built, options)
