"""The order of the stages: config -> weights -> export -> calibration -> build -> session. Only this
package knows it. :func:`prepare` makes what every build of a command shares (weights, export,
calibration set: each once); :func:`build_model` resolves a ``--target-drop`` into build options
(:mod:`.search`) and builds; the later stages (eval, benchmark, report) take built models and never
build. Torch-free unless a stage that needs torch must actually run (an export that is not cached,
or the torch backend).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vacc_deploy.backends import (
    AUTO,
    BuildInputs,
    BuiltModel,
    SessionOptions,
    backend_names,
    get_backend,
    resolve,
)
from vacc_deploy.backends.ort import NAME as ORT_NAME
from vacc_deploy.benchmark.runner import BenchSettings, BenchTarget, benchmark_row
from vacc_deploy.backends.ort import VACC_NUMERICS
from vacc_deploy.config import RowConfig
from vacc_deploy.errors import BackendUnavailable
from vacc_deploy.evaluation.upscaler import Upscaler
from vacc_deploy.pipeline.requests import CalibRequest, ModelRequest, variants
from vacc_deploy.pipeline.stages import (
    Upstream,
    build_stage,
    calib_stage,
    card_graph_stage,
    export_stage,
    open_upscaler,
    weights_stage,
    with_row_defaults,
)
from vacc_deploy.types import DEFAULT_OVERLAP

__all__ = ["BenchSettings", "BuildOutcome", "CalibRequest", "ModelRequest", "Upstream", "benchmark_stage", "build",
           "build_command", "build_model", "build_models", "prepare", "upscaler_for", "vacc_files", "variants"]


def prepare(config: RowConfig, req: ModelRequest, workdir: Path | None, *, int8: bool | None = None,
            force_calib: bool = False) -> Upstream:
    """The weights, the fp32 export and, when an int8 build is asked for (``int8``; default: whether
    ``req`` is int8) and calibration images were given, the calibration set: each stage once."""
    weights = weights_stage(config, req.weights)
    exported = export_stage(config, weights, req, workdir)
    wants_int8 = req.build.precision == "int8" if int8 is None else int8
    calib = calib_stage(config, exported, req.calib, workdir, force=force_calib) if wants_int8 else None
    return Upstream(config, weights, exported, calib, workdir)


def resolved(up: Upstream, req: ModelRequest) -> ModelRequest:
    """``req`` with its ``--target-drop`` replaced by the search's chosen build options (the
    search is cached) and the row's int8 recipe filled in (:func:`~vacc_deploy.pipeline.stages.with_row_defaults`)."""
    if req.build.searches:
        from vacc_deploy.pipeline.search import chosen_request, search_stage

        req = chosen_request(req, search_stage(up, req)[0])
    ranges = get_backend(req.backend).calibration == "ranges"
    return dataclasses.replace(req, build=with_row_defaults(up.config, req.build, ranges=ranges))


def build_model(up: Upstream, req: ModelRequest) -> BuiltModel:
    """The model ``req`` names, built from ``up`` (or reused): see :func:`resolved` and
    :func:`~vacc_deploy.pipeline.stages.build_stage`."""
    return build_stage(up, resolved(up, req))


def build(config: RowConfig, req: ModelRequest, workdir: Path | None) -> BuiltModel:
    """The model ``req`` names: :func:`prepare` then :func:`build_model` (one-off callers; a command
    building several models prepares once)."""
    return build_model(prepare(config, req, workdir), req)


def build_models(config: RowConfig, req: ModelRequest, wanted: Sequence[tuple[str, str | None]],
                 workdir: Path | None) -> list[BuiltModel]:
    """One built model per (precision, int8 method) of ``wanted``, sharing one :func:`prepare`."""
    up = prepare(config, req, workdir, int8=any(p == "int8" for p, _ in wanted))
    return [build_model(up, req.with_precision(p, m)) for p, m in wanted]


def upscaler_for(config: RowConfig, req: ModelRequest, workdir: Path | None, *,
                 overlap: int = DEFAULT_OVERLAP, options: SessionOptions = SessionOptions(),
                 up: Upstream | None = None) -> tuple[Upscaler, BuiltModel]:
    """Build (or reuse) the requested model and wrap a session of it in an :class:`Upscaler`
    (``up``: the command's shared artifacts, made here when not given). Raises
    BackendUnavailable, before building anything, when the backend cannot run here."""
    reason = get_backend(req.backend).unavailable_reason()
    if reason is not None:
        raise BackendUnavailable(f"backend {req.backend} cannot run here: {reason}")
    built = build_model(up or prepare(config, req, workdir), req)
    return open_upscaler(built, req.backend, options, overlap), built


def vacc_files(up: Upstream, req: ModelRequest):  # -> vacc_deploy.backends.vacc.build.VaccBuild
    """The vamc build files of ``req`` (written, not compiled: for a VACC host); an int8 build's
    model is the card graph (:func:`~vacc_deploy.pipeline.stages.card_graph_stage`)."""
    from vacc_deploy.backends.vacc.build import write_files

    r = resolved(up, req)
    up = card_graph_stage(up) if r.build.precision == "int8" else up
    return write_files(BuildInputs(config=up.config, weights=up.weights, options=r.build, exported=up.exported,
                                   calib=up.calib, workdir=up.workdir))


@dataclass
class BuildOutcome:
    """What ``vacc-deploy build`` made: the backend used (``auto`` resolved, with the reason), the
    ``--target-drop`` search (result, path) when one ran, the vamc files when any were written,
    the built model, and whether it is the emulation standing in for a missing vamc."""

    backend: str
    reason: str
    built: BuiltModel | None
    vacc: object | None = None  # vacc_deploy.backends.vacc.build.VaccBuild
    search: tuple[dict, Path] | None = None
    emulated: bool = False


def build_command(config: RowConfig, req: ModelRequest, workdir: Path | None, *,
                  vamc_timeout_s: float | None = None) -> BuildOutcome:
    """The build command's flow: ``auto`` resolved; the search first when a ``--target-drop`` is
    set; for the VACC backend the vamc files, compiled when vamc is installed, else (int8) the
    emulation of the card's arithmetic on ONNX Runtime; ``auto`` picking a CPU backend also writes
    the vamc files for a VACC host when the precision is one the card builds."""
    from vacc_deploy.backends.vacc.build import build_vacc
    from vacc_deploy.backends.vacc.compile import vamc_found

    backend, reason = resolve(req.backend)
    up = prepare(config, req, workdir)
    search = None
    if req.build.searches:
        from vacc_deploy.pipeline.search import chosen_request, search_stage

        result, path, _ = search_stage(up, req)
        search, req = (result, path), chosen_request(req, result)
    asked, req = req.backend, dataclasses.replace(req, backend=backend.name)
    if backend.artifact == "vamc":
        if req.build.precision == "int8" and vamc_found() is None:
            vb = vacc_files(up, req)
            # no compiler here: what the card would compute, emulated on ONNX Runtime
            emulation = dataclasses.replace(req, backend=ORT_NAME).with_build(numerics=VACC_NUMERICS)
            built = build_model(up, emulation)
            return BuildOutcome(backend.name, reason, built, vb, search, emulated=True)
        r = resolved(up, req)
        up = card_graph_stage(up) if r.build.precision == "int8" else up
        built = build_vacc(BuildInputs(config=up.config, weights=up.weights, options=r.build, exported=up.exported,
                                       calib=up.calib, workdir=up.workdir, force=req.force),
                           timeout_s=vamc_timeout_s)
        return BuildOutcome(backend.name, reason, built, built.vamc, search)
    vb = None
    if asked == AUTO and backend_names(artifact="vamc", precision=req.build.precision):
        vb = vacc_files(up, req)  # the vamc files, for a VACC host
    return BuildOutcome(backend.name, reason, build_model(up, req), vb, search)


def benchmark_stage(config: RowConfig, req: ModelRequest, configs: Sequence[tuple[str, str, str | None]],
                    workdir: Path | None, settings: BenchSettings, up: Upstream | None = None) -> dict:
    """Build (or reuse) the model of every (backend, precision, int8 method) configuration, then
    measure them all (:func:`vacc_deploy.benchmark.runner.benchmark_row`): the SPEC section 6
    document. The input shape and FLOPs are those of the ONNX file a configuration runs (the fp32
    export for a backend that runs the module)."""
    from vacc_deploy.benchmark.measure import model_flops

    up = up or prepare(config, req, workdir, int8=any(p == "int8" for _, p, _ in configs))
    targets = []
    for backend, precision, method in configs:
        built = build_model(up, dataclasses.replace(req, backend=backend).with_precision(precision, method))
        onnx_path = built.onnx_path or up.exported.onnx_path
        shape = tuple(built.input_shape if built.onnx_path else up.exported.input_shape)
        targets.append(BenchTarget(backend, built, shape, model_flops(onnx_path)))  # type: ignore[arg-type]
    return benchmark_row(config.name, targets, settings)
