"""The order of the stages: config → export → calibration → build → session. Only this module
knows it; each stage takes its input artifact and returns a new one. Torch-free unless a stage that
needs torch must actually run (an export that is not cached, or the torch backend).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vacc_deploy.backends import DEFAULT_BACKEND, BuiltModel, SessionOptions, get_backend, open_session
from vacc_deploy.backends.ort.build import PRECISIONS, BuildOptions, BuildResult, build_onnxruntime
from vacc_deploy.calibration.dataset import CalibSet, make_calibration_set
from vacc_deploy.config import Quantization, RowConfig
from vacc_deploy.errors import BackendUnavailable, UsageError
from vacc_deploy.export import DEFAULT_OPSET, ExportResult, export_row, weights_identity
from vacc_deploy.imaging.tiling import DEFAULT_OVERLAP
from vacc_deploy.evaluation.upscaler import Upscaler
from vacc_deploy.spec import ModelSpec

QUANT_METHODS: tuple[str, ...] = typing.get_args(Quantization.model_fields["method"].annotation)


@dataclass(frozen=True)
class CalibRequest:
    """Where the calibration set comes from and how it is made (see :mod:`vacc_deploy.calibration.dataset`)."""

    images: Path | None = None
    num: int = 50
    seed: int = 0
    mode: str = "crop"
    degrade: str = "none"


@dataclass(frozen=True)
class ModelRequest:
    """Which model a command wants: weights, fixed shape, backend, build and calibration options."""

    weights: str | None = None
    shape: tuple[int, int, int, int] | None = None
    opset: int = DEFAULT_OPSET
    backend: str = DEFAULT_BACKEND
    build: BuildOptions = field(default_factory=BuildOptions)
    calib: CalibRequest = field(default_factory=CalibRequest)
    force: bool = False  # redo the command's last stage (the build; for calib, the set) even when cached

    def with_precision(self, precision: str, quant: str | None = None, numerics: str | None = None) -> "ModelRequest":
        """The same request for another precision / calibration method (/ int8 numerics, when given)."""
        extra = {"numerics": numerics} if numerics else {}
        return dataclasses.replace(self, build=dataclasses.replace(self.build, precision=precision, quant=quant,
                                                                   **extra))


def variants(config: RowConfig, precisions: Sequence[str], quants: Sequence[str] | None = None, *,
             with_fp32: bool = True) -> list[tuple[str, str | None]]:
    """The (precision, int8 method) builds a command asks for, in the order fp32, fp16, int8 (one
    int8 build per method; default method: the row's). ``with_fp32`` puts fp32 first even when not
    asked (eval and the pipeline need it as the fidelity reference). Raises UsageError for an
    unknown precision or int8 method."""
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise UsageError(f"--precisions: unknown precision '{bad[0]}' (expected {', '.join(PRECISIONS)})")
    methods = tuple(quants) if quants else (config.quant.method,)
    odd = [m for m in methods if m not in QUANT_METHODS]
    if odd:
        raise UsageError(f"--quant: unknown int8 calibration method '{odd[0]}' (expected {', '.join(QUANT_METHODS)})")
    wanted = set(precisions) | ({"fp32"} if with_fp32 else set())
    return [(p, m) for p in PRECISIONS if p in wanted for m in (methods if p == "int8" else (None,))]


def export_stage(config: RowConfig, req: ModelRequest, workdir: Path | None) -> ExportResult:
    """The fixed-shape fp32 ONNX model (cached)."""
    return export_row(config, req.weights, req.shape, req.opset, workdir)


def calib_stage(config: RowConfig, spec: ModelSpec, shape: tuple[int, ...], req: ModelRequest,
                workdir: Path | None, force: bool = False) -> CalibSet | None:
    """The calibration set (cached; ``force``: made again), or None when no calibration images were given."""
    c = req.calib
    if c.images is None:
        return None
    return make_calibration_set(config.name, spec, c.images, shape, num=c.num, seed=c.seed, mode=c.mode,
                                degrade=c.degrade, workdir=workdir, force=force)


def _build_options(config: RowConfig, req: ModelRequest, workdir: Path | None) -> BuildOptions:
    """The build options of ``req``: the row's seed method by default; a ``--target-drop`` replaced
    by the cached search's choice (:mod:`vacc_deploy.pipeline.search`)."""
    if req.build.target_drop is not None and req.build.precision == "int8":
        from vacc_deploy.pipeline.search import resolve_target_drop

        req = resolve_target_drop(config, req, workdir)
    opts = req.build
    if opts.precision == "int8" and opts.quant is None:
        opts = dataclasses.replace(opts, quant=config.quant.method)  # the row's seed method
    return opts


def build_onnx(config: RowConfig, req: ModelRequest, workdir: Path | None) -> tuple[ExportResult, BuildResult]:
    """Export, calibrate (int8) and build for ONNX Runtime; every stage cached (``req.force``: the
    build is redone)."""
    exported = export_stage(config, req, workdir)
    spec = ModelSpec(**exported.spec)
    opts = _build_options(config, req, workdir)
    calib = calib_stage(config, spec, exported.input_shape, req, workdir) if opts.precision == "int8" else None
    built = build_onnxruntime(exported.onnx_path, spec, opts, row=config.name, calib=calib, workdir=workdir,
                              force=req.force)
    return exported, built


def vacc_stage(config: RowConfig, req: ModelRequest, workdir: Path | None, *, compile: bool = True,
               timeout_s: float | None = None):
    """Export, calibrate (int8) and write/compile the vamc build (see :mod:`vacc_deploy.backends.vacc.build`)."""
    from vacc_deploy.backends.vacc.build import build_vacc

    exported = export_stage(config, req, workdir)
    spec = ModelSpec(**exported.spec)
    opts = _build_options(config, req, workdir)
    calib = calib_stage(config, spec, exported.input_shape, req, workdir) if opts.precision == "int8" else None
    return exported, build_vacc(config, spec, exported, opts, calib, workdir, compile=compile, timeout_s=timeout_s)


def build_stage(config: RowConfig, req: ModelRequest, workdir: Path | None) -> BuiltModel:
    """The model artifact a session of ``req.backend`` runs (the backend's ``artifact``)."""
    shape = tuple(req.shape or config.input_shape)
    backend = get_backend(req.backend)
    if req.build.precision not in backend.precisions:
        raise UsageError(f"backend {backend.name} runs {', '.join(backend.precisions)} only "
                         f"(got precision {req.build.precision})")
    if backend.artifact == "vamc":
        exported, vb = vacc_stage(config, req, workdir)
        return BuiltModel(row=config.name, spec=ModelSpec(**exported.spec), input_shape=tuple(exported.input_shape),
                          precision=req.build.precision, quant=req.build.quant, label=exported.weights,
                          vacc_dir=vb.deploy_dir, vdsp_json=vb.vdsp_json, config=config)
    if backend.artifact == "module":
        from vacc_deploy.models import row_spec

        label, _, model_arg = weights_identity(config, req.weights)
        return BuiltModel(row=config.name, spec=row_spec(config), input_shape=shape, label=label,
                          weights=str(model_arg), config=config)
    exported, built = build_onnx(config, req, workdir)
    return BuiltModel(row=config.name, spec=ModelSpec(**exported.spec), input_shape=tuple(exported.input_shape),
                      precision=built.precision, quant=built.quant, label=exported.weights,
                      onnx_path=built.model_path, config=config, numerics=built.numerics)


def upscaler_for(config: RowConfig, req: ModelRequest, workdir: Path | None, *,
                 overlap: int = DEFAULT_OVERLAP, options: SessionOptions = SessionOptions()
                 ) -> tuple[Upscaler, BuiltModel]:
    """Build (or reuse) the requested model and wrap a session of it in an :class:`Upscaler`.
    Raises BackendUnavailable, before building anything, when the backend cannot run here."""
    reason = get_backend(req.backend).unavailable_reason()
    if reason is not None:
        raise BackendUnavailable(f"backend {req.backend} cannot run here: {reason}")
    built = build_stage(config, req, workdir)
    session = open_session(req.backend, built, options)
    return Upscaler(session, built.spec, overlap), built
