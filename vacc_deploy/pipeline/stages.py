"""The stages, one function each: it takes the artifacts of the stages before it and returns its own
(each cached on disk by the stage's module). :class:`Upstream` bundles what every build of one
command shares, made once by :func:`vacc_deploy.pipeline.prepare`. Torch-free unless an export
must actually run.

Order: weights (resolved and hashed once) -> export (fixed-shape fp32 ONNX) -> calibration set ->
[equalized export (int8 with ``equalize``)] -> ranges (per calibration method) -> build (the
backend's) -> session.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from vacc_deploy import artifacts
from vacc_deploy.backends import BuildInputs, BuildOptions, BuiltModel, SessionOptions, get_backend, open_session
from vacc_deploy.calibration.dataset import CalibSet, CalibSource, make_calibration_set
from vacc_deploy.calibration.ranges import Ranges, calibration_ranges
from vacc_deploy.config import RowConfig
from vacc_deploy.errors import UsageError
from vacc_deploy.evaluation.upscaler import Upscaler
from vacc_deploy.export import ExportResult, export_row
from vacc_deploy.pipeline.requests import CalibRequest, ModelRequest
from vacc_deploy.types import DEFAULT_EQUALIZE, DEFAULT_OVERLAP, DEFAULT_WEIGHT_ROUNDING
from vacc_deploy.weights import WeightsRef, weights_identity


@dataclass(frozen=True)
class Upstream:
    """The artifacts every build of one command shares: the row, its resolved weights, the fp32
    export and (when int8 is asked for and images were given) the calibration set."""

    config: RowConfig
    weights: WeightsRef
    exported: ExportResult
    calib: CalibSet | None
    workdir: Path | None = None


def weights_stage(config: RowConfig, weights: str | Path | None) -> WeightsRef:
    """The row's weights, resolved (official / house / synthetic / a file) and hashed."""
    return weights_identity(config, weights)


def export_stage(config: RowConfig, weights: WeightsRef, req: ModelRequest, workdir: Path | None,
                 force: bool = False) -> ExportResult:
    """The fixed-shape fp32 ONNX model (cached)."""
    return export_row(config, weights, req.shape, req.opset, workdir, force)


def calib_stage(config: RowConfig, exported: ExportResult, calib: CalibRequest, workdir: Path | None,
                force: bool = False) -> CalibSet | None:
    """The calibration set of the export's input size (cached; ``force``: made again), or None when
    no calibration images were given."""
    if calib.images is None:
        return None
    return make_calibration_set(config.name, exported.spec, calib.images, tuple(exported.input_shape), num=calib.num,
                                seed=calib.seed, mode=calib.mode, degrade=calib.degrade, workdir=workdir, force=force)


def ranges_stage(up: Upstream, opts: BuildOptions) -> Ranges:
    """Activation ranges of the export over the calibration set with the method and percentile of
    ``opts.calibration`` (``opts.quant``'s, or TVM's rule for the vacc numerics; cached).
    Raises UsageError (option ``calib_images``) without a calibration set."""
    if up.calib is None or opts.quant is None:
        raise UsageError("an int8 build needs calibration images (none given)", option="calib_images")
    method, percentile = opts.calibration
    return calibration_ranges(up.exported.onnx_path, up.calib, up.exported.spec, method, percentile,
                              artifacts.row_workdir(up.config.name, up.workdir))


def equalize_stage(up: Upstream) -> Upstream:
    """``up`` with its export replaced by the cross-layer channel equalization of it (cached; exact
    in float, scales from the calibration set: :mod:`vacc_deploy.backends.ort.prepare`), so that the
    ranges and the build that follow read the equalized model. Raises UsageError (option
    ``calib_images``) without a calibration set."""
    from vacc_deploy.backends.ort.prepare import equalized_model

    if up.calib is None:
        raise UsageError("equalization needs calibration images (none given)", option="calib_images")
    path, info = equalized_model(up.exported.onnx_path, up.calib.sha256, CalibSource(up.calib, up.exported.spec),
                                 artifacts.row_workdir(up.config.name, up.workdir))
    note = (f"equalized: {info['channels']} channels in {info['spaces']} spaces, "
            f"scales {info['scale_min']:.3g}..{info['scale_max']:.3g}")
    return dataclasses.replace(up, exported=dataclasses.replace(up.exported, onnx_path=path,
                                                                notes=[*up.exported.notes, note]))


def card_graph_stage(up: Upstream) -> Upstream:
    """``up`` with its export replaced by the graph an int8 build for the VACC card starts from
    (:mod:`vacc_deploy.backends.ort.card_graph`: identity 1x1 convs as bias adds; cached; the same
    function to the bit), or ``up`` itself when there is nothing to rewrite."""
    from vacc_deploy.backends.ort.card_graph import card_graph_model

    path, replaced = card_graph_model(up.exported.onnx_path, artifacts.row_workdir(up.config.name, up.workdir))
    if not replaced:
        return up
    note = f"card graph: {len(replaced)} identity 1x1 convs as bias adds ({', '.join(replaced)})"
    return dataclasses.replace(up, exported=dataclasses.replace(up.exported, onnx_path=path,
                                                                notes=[*up.exported.notes, note]))


def with_row_defaults(config: RowConfig, opts: BuildOptions, *, ranges: bool = True) -> BuildOptions:
    """``opts`` with the row's int8 recipe (:class:`vacc_deploy.config.Quantization`) filled in
    where the user named nothing: its seed calibration method, and its equalization and weight
    rounding for an ONNX Runtime-numerics build of a backend that takes ranges (``ranges``); the
    vacc numerics and self-calibrating backends get neither (they compute what the card computes)."""
    if opts.precision != "int8":
        return opts
    rewrites = ranges and not opts.emulates_vacc
    q = config.quant
    return dataclasses.replace(
        opts, quant=opts.quant or q.method,
        equalize=(q.equalize if rewrites else DEFAULT_EQUALIZE) if opts.equalize is None else opts.equalize,
        weight_rounding=opts.weight_rounding or (q.weight_rounding if rewrites else DEFAULT_WEIGHT_ROUNDING))


def build_stage(up: Upstream, req: ModelRequest) -> BuiltModel:
    """The artifact ``req.backend`` builds from ``up`` with ``req.build`` (a ``target_drop`` must
    have been resolved into options before: :func:`vacc_deploy.pipeline.build_model`). The ranges
    stage runs first for an int8 build of a backend that takes ranges. Raises UsageError for a
    precision the backend does not run, or an int8 build without calibration images."""
    backend = get_backend(req.backend)
    opts = with_row_defaults(up.config, req.build.without_targets(), ranges=backend.calibration == "ranges")
    if opts.precision not in backend.precisions:
        raise UsageError(f"backend {backend.name} runs {', '.join(backend.precisions)} only "
                         f"(got {opts.precision})", option="precision")
    int8 = opts.precision == "int8"
    if int8 and up.calib is None:
        raise UsageError("an int8 build needs calibration images (none given)", option="calib_images")
    if int8 and (opts.emulates_vacc or backend.card):
        up = card_graph_stage(up)
    if int8 and opts.equalize:
        if backend.calibration != "ranges":
            raise UsageError(f"backend {backend.name} calibrates itself: equalization does not apply",
                             option="equalize")
        up = equalize_stage(up)
    ranges = ranges_stage(up, opts) if int8 and backend.calibration == "ranges" else None
    return backend.build(BuildInputs(config=up.config, weights=up.weights, options=opts, exported=up.exported,
                                     calib=up.calib if int8 else None, ranges=ranges, workdir=up.workdir,
                                     force=req.force))


def open_upscaler(built: BuiltModel, backend: str, options: SessionOptions = SessionOptions(),
                  overlap: int = DEFAULT_OVERLAP) -> Upscaler:
    """A session of ``backend`` on ``built``, wrapped with the row's pre/post-processing and tiling."""
    return Upscaler(open_session(backend, built, options), built.spec, overlap)
