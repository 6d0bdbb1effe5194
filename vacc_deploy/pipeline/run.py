"""The whole flow for one row: data → weights → export → calibrate → build each precision → eval →
benchmark → report, every stage reused when its inputs are unchanged (a second run of the same
command does no work and says so). Torch is imported only if an export must actually run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from vacc_deploy import artifacts
from vacc_deploy.backends import DEFAULT_BACKEND
from vacc_deploy.config import RowConfig
from vacc_deploy.errors import WeightsError
from vacc_deploy.pipeline import ModelRequest, build_onnx, calib_stage, export_stage
from vacc_deploy.pipeline import variants as pipeline_variants
from vacc_deploy.pipeline.cache import StageRecord, cached_json, timed
from vacc_deploy.spec import ModelSpec

log = logging.getLogger(__name__)

STAGES = ("data", "export", "calibrate", "build", "analyze", "eval", "benchmark", "report")
ANALYZE_IMAGES = 8  # calibration samples the pipeline's int8 layer analysis looks at
REPORT_FORMAT = 2  # in the report's cache key: a report written by older code is written again


@dataclass
class PipelineOptions:
    """What ``vacc-deploy pipeline`` was asked: data, precisions/methods, backend and the base
    request (weights, shape, build and calibration options)."""

    request: ModelRequest
    dataset: Path | None = None
    precisions: tuple[str, ...] = ("fp32", "fp16", "int8")
    quants: tuple[str, ...] | None = None
    iters: int = 20
    warmup: int = 3
    overlap: int = 16
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
        from vacc_deploy.export import weights_identity

        label, _, _ = weights_identity(config, weights)
        kind = label.split(":")[0]
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


def _builds(config: RowConfig, req: ModelRequest, variants: list, workdir: Path | None) -> tuple[list, bool]:
    built = [build_onnx(config, req.with_precision(p, m), workdir) for p, m in variants]
    return built, all(b.cached for _, b in built if b.precision != "fp32")


def _vamc_yaml(config: RowConfig, req: ModelRequest, quant: str | None, workdir: Path | None) -> str | None:
    """The vamc build YAML for an int8 build (written for a VACC host; not compiled here)."""
    from vacc_deploy.pipeline import vacc_stage

    _, vb = vacc_stage(config, req.with_precision("int8", quant), workdir, compile=False)
    return vb.yaml_path.read_text()


def _candidates(config: RowConfig, req: ModelRequest, built: list, overlap: int) -> list:
    from vacc_deploy.backends import BuiltModel, open_session
    from vacc_deploy.evaluation.protocols import Candidate
    from vacc_deploy.evaluation.upscaler import Upscaler

    out = []
    for exported, b in built:
        spec = ModelSpec(**exported.spec)
        bm = BuiltModel(row=config.name, spec=spec, input_shape=tuple(exported.input_shape),
                        precision=b.precision, quant=b.quant, onnx_path=b.model_path)
        up = Upscaler(open_session(DEFAULT_BACKEND, bm), spec, overlap)
        out.append(Candidate(b.precision, b.quant, DEFAULT_BACKEND, up, tuple(exported.input_shape[2:])))
    return out


def _eval(config: RowConfig, cands: list, dataset: Path, built: list, workdir: Path | None) -> tuple[dict, bool]:
    from vacc_deploy.evaluation.protocols import evaluate
    from vacc_deploy.imaging.datasets import find_pairs

    scale = cands[0].upscaler.spec.scale
    pairs = find_pairs(dataset, scale)
    digests = [[p.name, artifacts.file_digest(p.hr_path)] for p in pairs]
    key = artifacts.stage_key({"models": [str(b.model_path) for _, b in built], "data": digests})
    path = artifacts.row_workdir(config.name, workdir) / "eval" / f"{key}.json"
    return cached_json(path, lambda: evaluate(pairs, cands, row=config.name, dataset=dataset, scale=scale))


def _crops(result: dict, cands: list, dataset: Path, assets: Path) -> list:
    """Side-by-side crops of the (up to) 3 images whose int8 output lost most against fp32."""
    from vacc_deploy.evaluation.protocols import load_pair
    from vacc_deploy.imaging.datasets import find_pairs
    from vacc_deploy.imaging.io import to_uint
    from vacc_deploy.evaluation.upscaler import conversion_for
    from vacc_deploy.report.crops import make_crop_set, worst_images

    scale = cands[0].upscaler.spec.scale
    pairs = {p.name: p for p in find_pairs(dataset, scale)}
    out = []
    for worst in worst_images(result, 3):
        lr, hr = load_pair(pairs[worst["image"]], scale)
        ref = next(c for c in cands if c.precision == "fp32")
        q = next(c for c in cands if c.precision == "int8" and c.quant == worst["quant"])
        srs = [to_uint(c.upscaler(lr.astype("float32") / 255), 8, conversion_for(c.upscaler.spec, "official"))
               for c in (ref, q)]
        out.append(make_crop_set(worst, lr, hr, srs[0], srs[1], assets))
    return out


def _report(config: RowConfig, ctx: dict[str, Any], workdir: Path | None) -> tuple[Path, bool]:
    """Assemble and write report.md / report.html (reused when its inputs are unchanged)."""
    from vacc_deploy.report.model import BuildInfo, ReportData, StageInfo
    from vacc_deploy.report.render import write_report

    folder = artifacts.row_workdir(config.name, workdir) / "report"
    an = ctx.get("analysis")
    key = artifacts.stage_key({"format": REPORT_FORMAT, "eval": ctx["eval_key"], "bench": ctx.get("bench_key"), "notes": ctx["notes"],
                               "analysis": an[1] if an else None})
    if (folder / "report.json").is_file() and artifacts.read_json(folder / "report.json").get("manifest", {}).get("key") == key:
        return folder, True
    exported = ctx["built"][0][0]
    builds = [BuildInfo(b.precision, b.quant, DEFAULT_BACKEND, (b.manifest or {}).get("settings", {}), b.manifest or {},
                        ctx["yaml"].get(b.quant)) for _, b in ctx["built"]]
    data = ReportData(
        row=config.name, description=config.description, weights=exported.weights, provenance=ctx["provenance"],
        weights_sha256=exported.weights_sha256,
        scale=exported.spec["scale"], input_shape=list(exported.input_shape), output_shape=list(exported.output_shape),
        flops_g=ctx.get("flops", 0) / 1e9 or None, params_m=_params(exported.onnx_path) / 1e6,
        eval=ctx["eval"], benchmark=ctx.get("bench"),
        crops=_crops(ctx["eval"], ctx["cands"], ctx["dataset"], folder / "assets"), builds=builds,
        analysis=an[0] if an else None, analysis_plot=an[1] if an else None,
        manifest={"key": key, "versions": artifacts.tool_versions(), "machine": artifacts.machine(),
                  "hashes": {"onnx_fp32_sha256": artifacts.file_digest(exported.onnx_path),
                             **({"weights_sha256": exported.weights_sha256} if exported.weights_sha256 else {})},
                  "weights": exported.weights,
                  "export": str(exported.onnx_path.parent)},
        stages=[StageInfo(r.stage, r.status, r.seconds) for r in ctx["records"]], notes=ctx["notes"])
    write_report(data, folder)
    return folder, False


def _bench(config: RowConfig, req: ModelRequest, variants: list, built: list, opts: PipelineOptions,
           workdir: Path | None) -> tuple[dict, bool]:
    from vacc_deploy.benchmark.runner import benchmark_row

    key = artifacts.stage_key({"models": [str(b.model_path) for _, b in built], "iters": opts.iters,
                               "warmup": opts.warmup, "machine": artifacts.machine()})
    path = artifacts.row_workdir(config.name, workdir) / "benchmark" / f"{key}.json"
    configs = [(DEFAULT_BACKEND, p, m) for p, m in variants]
    return cached_json(path, lambda: benchmark_row(config, req, configs, workdir=workdir, iters=opts.iters,
                                                   warmup=opts.warmup))


def run_pipeline(config: RowConfig, opts: PipelineOptions, workdir: Path | None = None) -> PipelineResult:
    """Run every stage for ``config`` (see module docstring); returns where the report is."""
    records: list[StageRecord] = []
    variants = pipeline_variants(config, opts.precisions, opts.quants)  # bad options fail before any stage
    weights, provenance, notes = _provenance(config, opts.request.weights)
    dataset, calib_images = _stage(records, "data", lambda: _data(opts, workdir))
    req = replace(opts.request, weights=weights, calib=replace(opts.request.calib, images=calib_images))
    exported = _stage(records, "export", lambda: (lambda e: (e, e.cached))(export_stage(config, req, workdir)))
    int8 = [m for p, m in variants if p == "int8"]
    if int8:
        _stage(records, "calibrate", lambda: _calibrate(config, req, exported, workdir))
    else:
        _skip(records, "calibrate", "no int8 build")
    built = _stage(records, "build", lambda: _builds(config, req, variants, workdir))
    analysis = _stage(records, "analyze", lambda: _analyze(config, req, int8[0], workdir)) if int8 else None
    if not int8:
        _skip(records, "analyze", "no int8 build")
    yaml = {m: _vamc_yaml(config, req, m, workdir) for m in int8}
    cands = _candidates(config, req, built, opts.overlap)
    result = _stage(records, "eval", lambda: _eval(config, cands, dataset, built, workdir))
    bench = None
    if opts.benchmark:
        bench = _stage(records, "benchmark", lambda: _bench(config, req, variants, built, opts, workdir))
    else:
        _skip(records, "benchmark", "not asked for")
    ctx = {"built": built, "eval": result, "eval_key": [str(b.model_path) for _, b in built] + [str(dataset)],
           "bench": bench, "bench_key": artifacts.stage_key(bench or {}),
           "yaml": yaml, "cands": cands, "dataset": dataset, "provenance": provenance, "notes": notes,
           "records": records, "flops": _flops(exported), "analysis": analysis}
    folder = _stage(records, "report", lambda: _report(config, ctx, workdir))
    return PipelineResult(folder, records, provenance, notes)


def _analyze(config: RowConfig, req: ModelRequest, quant: str, workdir: Path | None):
    """The layer analysis of the int8 build of ``quant`` over ``ANALYZE_IMAGES`` samples:
    ((analysis, plot), reused)."""
    from vacc_deploy.pipeline.analysis import analysis_stage

    result, path, reused = analysis_stage(config, req.with_precision("int8", quant), workdir,
                                          images=ANALYZE_IMAGES, progress=False)
    return (result, str(path.with_suffix(".png"))), reused


def _calibrate(config: RowConfig, req: ModelRequest, exported, workdir: Path | None):
    calib = calib_stage(config, ModelSpec(**exported.spec), exported.input_shape, req, workdir)
    return calib, calib.cached


def _params(onnx_path: Path) -> int:
    """Number of weights in the fp32 ONNX model (float initializers)."""
    import math

    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    return sum(math.prod(t.dims) for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT)


def _flops(exported) -> int:
    from vacc_deploy.benchmark.measure import model_flops

    return model_flops(exported.onnx_path)
