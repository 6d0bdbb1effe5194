"""The backend contract: what a backend is (:class:`Backend`), what it opens (:class:`BuiltModel`)
and what it returns (:class:`Session`). Torch-free; imports no vendor package.

A backend is one object in the registry (:data:`vacc_deploy.backends.BACKENDS`). Everything the
rest of the package needs to know about it - its name, its report label, which build artifact it
runs, which precisions, whether it can run here and why not - is an attribute or method of that
object, so adding a backend is one module plus one registry line.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from vacc_deploy.errors import BuildError
from vacc_deploy.spec import ModelSpec

#: What the build stage must produce for a backend: the fixed-shape ONNX file of the requested
#: precision ("onnx"), the vamc-compiled model ("vamc"), or nothing but the row and its weights
#: ("module": the PyTorch reference rebuilds the module itself).
Artifact = Literal["onnx", "vamc", "module"]


class Session(Protocol):
    """What every backend's session offers (the run contract).

    ``input_shape``: the fixed (N, C, H, W) input, or None when any size is accepted (PyTorch).

    ``run(batch)``: ``batch`` is a float32 NCHW array pre-processed as the model expects (channel
    order and value range of its :class:`ModelSpec`: values in [0, ``spec.value_range``]); with a
    fixed ``input_shape`` its shape must equal it. Returns a new float32 NCHW array of shape
    (N, C, H * scale, W * scale): the model's raw output (not clipped, not rounded). ``batch`` is
    not modified.
    """

    input_shape: tuple[int, ...] | None

    def run(self, batch: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class SessionOptions:
    """Runtime options: CPU threads (CPU backends; None = all cores), VACC device id, batch size."""

    threads: int | None = None
    device_id: int = 0
    batch_size: int = 1


@dataclass(frozen=True)
class BuiltModel:
    """The artifact a session runs: what the build stage produced for one precision.

    ``onnx_path`` is the ONNX model (artifact "onnx"); ``vacc_dir``/``vdsp_json`` the vamc output
    ("vamc"); ``config``/``weights`` let the torch backend rebuild the reference module ("module").
    ``label`` describes the weights for reports (official / synthetic / file).
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
    numerics: str | None = None  # int8: whose arithmetic (vacc_deploy.backends.ort.build.Numerics)


def installed(module: str) -> bool:
    """Whether ``module`` can be imported here, without importing it (a module whose
    ``sys.modules`` entry is None counts as missing)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def onnx_model(built: BuiltModel, runtime: str) -> Path:
    """The ONNX file ``built`` carries for a backend that runs ONNX builds; BuildError naming
    ``runtime`` when the build stage made none."""
    if built.onnx_path is None:
        raise BuildError(f"row '{built.row}': no ONNX model was built for {runtime}")
    return built.onnx_path


class Backend(ABC):
    """One way to run a built model.

    Attributes:
        name: the registry key, the value of ``--backend``/``--backends`` and of ``"backend"`` in
            result JSON.
        short: the label reports use (e.g. "ort").
        summary: one line for ``--help``.
        artifact: what the build stage produces for it (see :data:`Artifact`).
        precisions: the builds it runs (a subset of fp32, fp16, int8).

    Importing a backend's module must not import its runtime: :meth:`unavailable_reason` finds
    out without importing it, :meth:`open` imports it.
    """

    name: str
    short: str
    summary: str
    artifact: Artifact = "onnx"
    precisions: tuple[str, ...] = ("fp32", "fp16", "int8")

    @abstractmethod
    def unavailable_reason(self) -> str | None:
        """None when this backend can run here, else a one-line reason (what is missing)."""

    @abstractmethod
    def open(self, built: BuiltModel, options: SessionOptions = SessionOptions()) -> Session:
        """Load ``built`` and return a session honouring the :class:`Session` run contract.

        Raises:
            BackendUnavailable: the runtime is not installed or the device cannot be opened.
            BuildError: ``built`` lacks this backend's artifact or the runtime cannot load it.
        """

    def __repr__(self) -> str:
        return f"<backend {self.name}>"
