"""The order of the stages: config → export → (calibration → build) → session. Only this module
knows it; each stage takes its input artifact and returns a new one. Torch-free unless a stage that
needs torch must actually run (an export that is not cached, or the torch backend).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vacc_deploy.backends import BuiltModel, SessionOptions, open_session
from vacc_deploy.config import RowConfig
from vacc_deploy.errors import UsageError
from vacc_deploy.export import DEFAULT_OPSET, ExportResult, export_row, weights_identity
from vacc_deploy.imaging.tiling import DEFAULT_OVERLAP
from vacc_deploy.infer import Upscaler
from vacc_deploy.spec import ModelSpec

PRECISIONS = ("fp32",)


@dataclass(frozen=True)
class ModelRequest:
    """Which model a command wants: weights, fixed shape, backend and build options."""

    weights: str | None = None
    shape: tuple[int, int, int, int] | None = None
    opset: int = DEFAULT_OPSET
    backend: str = "onnxruntime"
    precision: str = "fp32"
    quant: str | None = None


def export_stage(config: RowConfig, req: ModelRequest, workdir: Path | None) -> ExportResult:
    """The fixed-shape fp32 ONNX model (cached)."""
    return export_row(config, req.weights, req.shape, req.opset, workdir)


def build_stage(config: RowConfig, req: ModelRequest, workdir: Path | None) -> BuiltModel:
    """The model artifact a session runs for ``req`` (fp32: the export itself)."""
    if req.precision not in PRECISIONS:
        raise UsageError(f"--precision {req.precision}: expected one of {', '.join(PRECISIONS)}")
    shape = tuple(req.shape or config.input_shape)
    if req.backend == "torch":
        from vacc_deploy.models import row_spec

        label, _, model_arg = weights_identity(config, req.weights)
        return BuiltModel(row=config.name, spec=row_spec(config), input_shape=shape, label=label,
                          weights=str(model_arg), config=config)
    exported = export_stage(config, req, workdir)
    return BuiltModel(row=config.name, spec=ModelSpec(**exported.spec), input_shape=shape,
                      label=exported.weights, onnx_path=exported.onnx_path, config=config)


def upscaler_for(config: RowConfig, req: ModelRequest, workdir: Path | None, *,
                 overlap: int = DEFAULT_OVERLAP, options: SessionOptions = SessionOptions()
                 ) -> tuple[Upscaler, BuiltModel]:
    """Build (or reuse) the requested model and wrap a session of it in an :class:`Upscaler`."""
    built = build_stage(config, req, workdir)
    session = open_session(req.backend, built, options)
    return Upscaler(session, built.spec, overlap), built
