"""The whole flow for one row: data → weights → export → calibrate → build each precision → eval →
benchmark → report, every stage reused when its inputs are unchanged (a second run of the same
command does no work and says so). Torch is imported only if an export must actually run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from vacc_deploy import artifacts, machine
from vacc_deploy.backends import DEFAULT_BACKEND, BuiltModel
from vacc_deploy.config import RowConfig
from vacc_deploy.errors import WeightsError
from vacc_deploy.evaluation.protocols import Candidate
from vacc_deploy.pipeline import BenchSettings, benchmark_stage, build_model, vacc_files
from vacc_deploy.pipeline.cache import StageRecord, cached_json, timed
from vacc_deploy.pipeline.report_stage import RunContext, report_stage
from vacc_deploy.pipeline.requests import ModelRequest, variants as pipeline_variants
from vacc_deploy.pipeline.stages import Upstream, calib_stage, export_stage, open_upscaler, weights_stage
from vacc_deploy.types import DEFAULT_ITERS, DEFAULT_OVERLAP, DEFAULT_WARMUP, PRECISIONS
from vacc_deploy.weights import weights_identity

log = logging.getLogger(__name__)

STAGES = ("data", "export", "calibrate", "build", "analyze", "eval", "benchmark", "report")
ANALYZE_IMAGES = 8  # calibration samples the pipeline's int8 layer analysis looks at


@dataclass
class PipelineOptions:
    """What ``vacc-deploy pipeline`` was asked: data, precisions/methods, benchmark settings and the
    base request (weights, shape, build and calibration options)."""

    request: ModelRequest
    dataset: Path | None = None
    precisions: tuple[str, ...] = PRECISIONS
    quants: tuple[str, ...] | None = None
    iters: int = DEFAULT_ITERS
    warmup: int = DEFAULT_WARMUP
    overlap: int = DEFAULT_OVERLAP
    benchmark: bool = True


@dataclass
class PipelineResult:
    """Where the report is, how each stage went, and the weights' provenance."""

    report_dir: Path
    stages: list[StageRecord] = field(default_factory=list)
    provenance: str = "official"
    notes: list[str] = field(default_factory=list)


_HOUSE_NOTE = "HOUSE WEIGHTS (not the official checkpoint): trained by this project, accuracy is not the paper's"


def _provenance(config: RowConfig, weights: str | None) -> tuple[str | None, str, list[str]]:
    """(weights to use, provenance, notes): official when found, else the row's house weights, else
    synthetic — said loudly."""
    from vacc_deploy.weights import resolve_with_kind

    if weights == "synthetic":
        return "synthetic", "synthetic", ["SYNTHETIC WEIGHTS: accuracy numbers are meaningless"]
    if weights not in (None, "official"):
        kind = weights_identity(config, weights).kind
        return weights, kind, [_HOUSE_NOTE] if kind == "house" else []
    try:
        _, kind = resolve_with_kind(config, weights)
        if kind == "house":
            return "house", "house", [f"NO OFFICIAL CHECKPOINT FOR {config.name}; {_HOUSE_NOTE}"]
        return None, "official", []
    except WeightsError as exc:
        note = (f"NO OFFICIAL CHECKPOINT FOR {config.name} ({exc}); USING SYNTHETIC WEIGHTS: "
                f"accuracy numbers are meaningless, speed and plumbing are real")
        log.warning(note)
        return "synthetic", "synthetic", [note]


def _stage(records: list[StageRecord], name: str, fn: Callable[[], tuple[Any, bool]]) -> Any:
    """Run one stage, record it and log one line (a log file gets one line per stage)."""
    result, rec = timed(name, fn)
    records.append(rec)
    log.info("  %-10s %s in %.1f s", name, "reused (inputs unchanged)" if rec.status == "reused" else "done",
             rec.seconds)
    return result


def _skip(records: list[StageRecord], name: str, why: str) -> None:
    """Record a stage this run does not have (status "skipped")."""
    records.append(StageRecord(name, "skipped", 0.0, why))
    log.info("  %-10s skipped (%s)", name, why)


def _data(opts: PipelineOptions, workdir: Path | None) -> tuple[tuple[Path, Path], bool]:
    """(evaluation folder, calibration folder): the user's, or scikit-image photos (offline)."""
    from vacc_deploy.imaging.samples import sample_datasets

    given = opts.dataset, opts.request.calib.images
    if all(given):
        return (Path(given[0]), Path(given[1])), True
    root = Path(workdir or artifacts.DEFAULT_WORKDIR) / "samples"
    existed = (root / "eval" / ".complete").is_file() and (root / "calib" / ".complete").is_file()
    ev, cal = sample_datasets(workdir)
    return (Path(given[0] or ev), Path(given[1] or cal)), existed


def _candidates(built: list[BuiltModel], overlap: int) -> list[Candidate]:
    """One evaluation candidate per built model, each on a fresh ONNX Runtime session."""
    return [Candidate(b.precision, b.quant, DEFAULT_BACKEND, open_upscaler(b, DEFAULT_BACKEND, overlap=overlap),
                      tuple(b.input_shape[2:])) for b in built]


def _eval(up: Upstream, cands: list[Candidate], dataset: Path, built: list[BuiltModel]) -> tuple[dict, bool]:
    from vacc_deploy.evaluation.protocols import evaluate
    from vacc_deploy.imaging.datasets import find_pairs

    scale = cands[0].upscaler.spec.scale
    pairs = find_pairs(dataset, scale)
    digests = [[p.name, artifacts.file_digest(p.hr_path)] for p in pairs]
    key = artifacts.stage_key({"models": [str(b.onnx_path) for b in built], "data": digests})
    path = artifacts.row_workdir(up.config.name, up.workdir) / "eval" / f"{key}.json"
    return cached_json(path, lambda: evaluate(pairs, cands, row=up.config.name, dataset=dataset, scale=scale))


def _bench(up: Upstream, req: ModelRequest, wanted: list, built: list[BuiltModel],
           opts: PipelineOptions) -> tuple[dict, bool]:
    key = artifacts.stage_key({"models": [str(b.onnx_path) for b in built], "iters": opts.iters,
                               "warmup": opts.warmup, "machine": machine.machine()})
    path = artifacts.row_workdir(up.config.name, up.workdir) / "benchmark" / f"{key}.json"
    configs = [(DEFAULT_BACKEND, p, m) for p, m in wanted]
    settings = BenchSettings(row_ref=up.config.name, iters=opts.iters, warmup=opts.warmup)
    return cached_json(path, lambda: benchmark_stage(up.config, req, configs, up.workdir, settings, up=up))


def _analyze(up: Upstream, req: ModelRequest, quant: str) -> tuple[tuple[dict, str], bool]:
    """The layer analysis of the int8 build of ``quant`` over ``ANALYZE_IMAGES`` samples:
    ((analysis, plot), reused)."""
    from vacc_deploy.pipeline.analysis import analysis_stage

    built = build_model(up, req.with_precision("int8", quant))
    result, path, reused = analysis_stage(up, built, images=ANALYZE_IMAGES, progress=False)
    return (result, str(path.with_suffix(".png"))), reused


def _upstream(records: list[StageRecord], config: RowConfig, req: ModelRequest, int8: bool,
              workdir: Path | None) -> Upstream:
    """The export and calibration stages, each recorded."""
    weights = weights_stage(config, req.weights)
    exported = _stage(records, "export", lambda: (lambda e: (e, e.cached))(export_stage(config, weights, req, workdir)))
    calib = None
    if int8:
        calib = _stage(records, "calibrate", lambda: (lambda c: (c, c.cached))(
            calib_stage(config, exported, req.calib, workdir)))
    else:
        _skip(records, "calibrate", "no int8 build")
    return Upstream(config, weights, exported, calib, workdir)


def run_pipeline(config: RowConfig, opts: PipelineOptions, workdir: Path | None = None) -> PipelineResult:
    """Run every stage for ``config`` (see module docstring); returns where the report is."""
    from vacc_deploy.benchmark.measure import model_flops

    records: list[StageRecord] = []
    wanted = pipeline_variants(config, opts.precisions, opts.quants)  # bad options fail before any stage
    weights, provenance, notes = _provenance(config, opts.request.weights)
    dataset, calib_images = _stage(records, "data", lambda: _data(opts, workdir))
    req = replace(opts.request, weights=weights, calib=replace(opts.request.calib, images=calib_images))
    int8 = [m for p, m in wanted if p == "int8"]
    up = _upstream(records, config, req, bool(int8), workdir)
    built = _stage(records, "build", lambda: (lambda bs: (bs, all(b.cached for b in bs if b.precision != "fp32")))(
        [build_model(up, req.with_precision(p, m)) for p, m in wanted]))
    analysis = _stage(records, "analyze", lambda: _analyze(up, req, int8[0])) if int8 else None
    if not int8:
        _skip(records, "analyze", "no int8 build")
    yaml = {m: vacc_files(up, req.with_precision("int8", m)).yaml_path.read_text() for m in int8}
    ctx = RunContext(up=up, built=built, cands=_candidates(built, opts.overlap), dataset=dataset,
                     provenance=provenance, notes=notes, records=records, analysis=analysis, yaml=yaml,
                     flops=model_flops(up.exported.onnx_path))
    ctx.eval = _stage(records, "eval", lambda: _eval(up, ctx.cands, dataset, built))
    if opts.benchmark:
        ctx.bench = _stage(records, "benchmark", lambda: _bench(up, req, wanted, built, opts))
    else:
        _skip(records, "benchmark", "not asked for")
    folder = _stage(records, "report", lambda: report_stage(ctx))
    return PipelineResult(folder, records, provenance, notes)
