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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from vacc_deploy.errors import BuildError
from vacc_deploy.spec import ModelSpec
from vacc_deploy.types import PRECISIONS, Precision

if TYPE_CHECKING:  # annotations only: the backends take these artifacts from the earlier stages
    from vacc_deploy.backends.ort.options import BuildOptions
    from vacc_deploy.calibration.dataset import CalibSet
    from vacc_deploy.calibration.ranges import Ranges
    from vacc_deploy.config import RowConfig
    from vacc_deploy.export import ExportResult
    from vacc_deploy.weights import WeightsRef

#: What the build stage must produce for a backend: the fixed-shape ONNX file of the requested
#: precision ("onnx"), the vamc-compiled model ("vamc"), or nothing but the row and its weights
#: ("module": the PyTorch reference rebuilds the module itself).
Artifact = Literal["onnx", "vamc", "module"]
#: What an int8 build of a backend needs from calibration: the activation ranges the pipeline
#: computes ("ranges"), or only the calibration images (the vendor compiler calibrates itself).
Calibration = Literal["ranges", "images"]


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
class BuildInputs:
    """What the pipeline hands a backend's build stage (the artifacts of the earlier stages).

    ``exported``: the fixed-shape fp32 ONNX export (None for a backend that rebuilds the module,
    artifact "module"); ``calib``: the calibration set (int8); ``ranges``: its activation ranges
    for ``options.quant`` (int8 builds of backends with ``calibration == "ranges"``; the vamc
    compiler calibrates on the set's images itself); ``weights``: the row's resolved weights.
    ``force``: rebuild even when a cached build matches.
    """

    config: RowConfig
    weights: WeightsRef
    options: BuildOptions
    exported: ExportResult | None = None
    calib: CalibSet | None = None
    ranges: Ranges | None = None
    workdir: Path | None = None
    force: bool = False


@dataclass(frozen=True)
class BuiltModel:
    """The artifact a session runs: what a backend's build stage produced for one precision.

    ``onnx_path`` is the ONNX model (artifact "onnx"); ``vacc_dir``/``vdsp_json`` the vamc output
    and ``vamc`` the vamc build files (artifact "vamc"); ``config``/``weights`` let the torch backend
    rebuild the reference module ("module"). ``label`` describes the weights for reports (official /
    house / synthetic / file). ``backend``: the backend that built it; ``folder``/``manifest``: the
    build folder and its manifest (None / empty for the fp32 export itself); ``cached``: reused.
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
    config: RowConfig | None = None  # the torch backend rebuilds the module from it
    numerics: str | None = None  # int8: whose arithmetic (vacc_deploy.backends.ort.Numerics)
    backend: str = ""
    folder: Path | None = None
    manifest: Mapping[str, Any] = field(default_factory=dict)
    cached: bool = False
    vamc: Any = None  # vacc_deploy.backends.vacc.files.VamcFiles of a vamc build


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
        calibration: what its int8 build needs (see :data:`Calibration`).
        card: whether it builds for the VACC card (its int8 build starts from the card's graph,
            :func:`vacc_deploy.pipeline.stages.card_graph_stage`, as the vacc numerics' do).

    Importing a backend's module must not import its runtime: :meth:`unavailable_reason` finds
    out without importing it, :meth:`open` imports it.
    """

    name: str
    short: str
    summary: str
    artifact: Artifact = "onnx"
    precisions: tuple[Precision, ...] = PRECISIONS
    calibration: Calibration = "ranges"
    card: bool = False

    @abstractmethod
    def unavailable_reason(self) -> str | None:
        """None when this backend can run here, else a one-line reason (what is missing)."""

    @abstractmethod
    def build(self, inputs: BuildInputs) -> BuiltModel:
        """Build (or reuse the cached build of) ``inputs.options.precision`` from the earlier stages'
        artifacts. Never calls an earlier stage: what it needs is in ``inputs``.

        Raises:
            UsageError: a precision or option this backend cannot build, or a missing input (no
                calibration set or ranges for int8).
            BackendUnavailable: the build needs a tool that is not installed (after writing what it can).
            BuildError: the build failed.
        """

    @abstractmethod
    def open(self, built: BuiltModel, options: SessionOptions = SessionOptions()) -> Session:
        """Load ``built`` and return a session honouring the :class:`Session` run contract.

        Raises:
            BackendUnavailable: the runtime is not installed or the device cannot be opened.
            BuildError: ``built`` lacks this backend's artifact or the runtime cannot load it.
        """

    def __repr__(self) -> str:
        return f"<backend {self.name}>"
