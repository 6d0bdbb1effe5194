"""The pipeline's report stage: what every earlier stage of one run produced (:class:`RunContext`),
assembled into :class:`~vacc_deploy.report.model.ReportData` and written as report.md / report.html
(reused while its inputs are unchanged). Torch-free."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vacc_deploy import artifacts, machine
from vacc_deploy.backends import BuiltModel
from vacc_deploy.evaluation.protocols import Candidate
from vacc_deploy.pipeline.cache import StageRecord
from vacc_deploy.pipeline.stages import Upstream

REPORT_FORMAT = 2  # in the report's cache key: a report written by older code is written again


@dataclass
class RunContext:
    """One pipeline run's artifacts, in stage order: the upstream artifacts, the built models (fp32
    first), the candidates evaluated, the evaluation folder and result, the benchmark document, the
    layer analysis (result, plot path), the vamc YAML text per int8 method, the weights'
    provenance, the notes shown loudly, the stage records and the fp32 model's FLOPs."""

    up: Upstream
    built: list[BuiltModel]
    cands: list[Candidate]
    dataset: Path
    provenance: str
    notes: list[str]
    records: list[StageRecord]
    eval: dict[str, Any] = field(default_factory=dict)
    bench: dict[str, Any] | None = None
    analysis: tuple[dict[str, Any], str] | None = None
    yaml: dict[str | None, str | None] = field(default_factory=dict)
    flops: int = 0

    @property
    def eval_key(self) -> list[str]:
        """What the evaluation depends on: the models' files and the dataset."""
        return [str(b.onnx_path) for b in self.built] + [str(self.dataset)]


def _crops(ctx: RunContext, assets: Path) -> list:
    """Side-by-side crops of the (up to) 3 images whose int8 output lost most against fp32."""
    from vacc_deploy.evaluation.protocols import load_pair
    from vacc_deploy.evaluation.upscaler import conversion_for
    from vacc_deploy.imaging.datasets import find_pairs
    from vacc_deploy.imaging.io import to_uint
    from vacc_deploy.report.crops import make_crop_set, worst_images

    scale = ctx.cands[0].upscaler.spec.scale
    pairs = {p.name: p for p in find_pairs(ctx.dataset, scale)}
    out = []
    for worst in worst_images(ctx.eval, 3):
        lr, hr = load_pair(pairs[worst["image"]], scale)
        ref = next(c for c in ctx.cands if c.precision == "fp32")
        q = next(c for c in ctx.cands if c.precision == "int8" and c.quant == worst["quant"])
        srs = [to_uint(c.upscaler(lr.astype("float32") / 255), 8, conversion_for(c.upscaler.spec, "official"))
               for c in (ref, q)]
        out.append(make_crop_set(worst, lr, hr, srs[0], srs[1], assets))
    return out


def _params(onnx_path: Path) -> int:
    """Number of weights in the fp32 ONNX model (float initializers)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    return sum(math.prod(t.dims) for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT)


def _key(ctx: RunContext) -> str:
    return artifacts.stage_key({"format": REPORT_FORMAT, "eval": ctx.eval_key,
                                "bench": artifacts.stage_key(ctx.bench or {}), "notes": ctx.notes,
                                "analysis": ctx.analysis[1] if ctx.analysis else None})


def report_stage(ctx: RunContext) -> tuple[Path, bool]:
    """Assemble and write report.md / report.html under ``<workdir>/<row>/report/``; returns
    (folder, reused). Reused when the report's inputs (models, data, benchmark, notes, analysis)
    are unchanged."""
    from vacc_deploy.report.model import BuildInfo, ReportData, StageInfo
    from vacc_deploy.report.render import write_report

    up, exported = ctx.up, ctx.up.exported
    folder = artifacts.row_workdir(up.config.name, up.workdir) / "report"
    key = _key(ctx)
    done = folder / "report.json"
    if done.is_file() and artifacts.read_json(done).get("manifest", {}).get("key") == key:
        return folder, True
    builds = [BuildInfo(b.precision, b.quant, b.backend, dict(b.manifest).get("settings", {}), dict(b.manifest),
                        ctx.yaml.get(b.quant)) for b in ctx.built]
    an = ctx.analysis
    data = ReportData(
        row=up.config.name, description=up.config.description, weights=exported.weights, provenance=ctx.provenance,
        weights_sha256=exported.weights_sha256,
        scale=exported.spec.scale, input_shape=list(exported.input_shape), output_shape=list(exported.output_shape),
        flops_g=ctx.flops / 1e9 or None, params_m=_params(exported.onnx_path) / 1e6,
        eval=ctx.eval, benchmark=ctx.bench, crops=_crops(ctx, folder / "assets"), builds=builds,
        analysis=an[0] if an else None, analysis_plot=an[1] if an else None,
        manifest={"key": key, "versions": machine.tool_versions(), "machine": machine.machine(),
                  "hashes": {"onnx_fp32_sha256": artifacts.file_digest(exported.onnx_path),
                             **({"weights_sha256": exported.weights_sha256} if exported.weights_sha256 else {})},
                  "weights": exported.weights, "export": str(exported.onnx_path.parent)},
        stages=[StageInfo(r.stage, r.status, r.seconds) for r in ctx.records], notes=ctx.notes)
    write_report(data, folder)
    return folder, False
