"""The int8 layer-analysis stage: per-layer SQNR / cosine of an int8 build against fp32 over the
build's own calibration samples (see :mod:`vacc_deploy.evaluation.analysis`), cached as JSON under
``<workdir>/<row>/analysis/`` with a PNG plot beside it. Torch-free.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vacc_deploy import artifacts
from vacc_deploy.calibration.dataset import CalibSource
from vacc_deploy.config import RowConfig
from vacc_deploy.errors import UsageError
from vacc_deploy.pipeline import ModelRequest, build_onnx, calib_stage
from vacc_deploy.pipeline.cache import cached_json
from vacc_deploy.progress import progress_bar
from vacc_deploy.spec import ModelSpec

ANALYSIS_FORMAT = 1


class _FirstN:
    """The first ``n`` items of a calibration source (re-iterable)."""

    def __init__(self, source: CalibSource, n: int | None) -> None:
        self.source, self.n = source, len(source) if n is None else min(n, len(source))

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[np.ndarray]:
        for i, x in enumerate(self.source):
            if i >= self.n:
                return
            yield x


def _compute(config: RowConfig, req: ModelRequest, workdir: Path | None, exported: Any, built: Any,
             images: int | None, progress: bool) -> dict[str, Any]:
    from vacc_deploy.evaluation.analysis import analyze_layers

    spec = ModelSpec(**exported.spec)
    calib = calib_stage(config, spec, exported.input_shape, req, workdir)
    assert calib is not None
    source = _FirstN(CalibSource(calib, spec), images)
    t0 = time.perf_counter()
    with progress_bar(total=len(source), desc=f"analyze {config.name}", unit="img", disable=not progress,
              leave=False) as bar:
        layers = analyze_layers(exported.onnx_path, built.model_path, source, progress=bar.update)
    return {"format": ANALYSIS_FORMAT, "row": config.name, "precision": "int8", "quant": built.quant,
            "build": str(built.folder), "settings": built.manifest.get("settings", {}),
            "float_layers": built.manifest.get("float_layers", []), "images": len(source),
            "calib_sha256": calib.sha256, "seconds": time.perf_counter() - t0,
            "layers": [layer.to_dict() for layer in layers]}


def analysis_stage(config: RowConfig, req: ModelRequest, workdir: Path | None, *, images: int | None = None,
                   progress: bool = True) -> tuple[dict[str, Any], Path, bool]:
    """Analyse the int8 build ``req`` names (built or reused first) over its first ``images``
    calibration samples (all by default). Returns (analysis, JSON path, reused). The PNG plot is
    ``<json>.png``. Raises UsageError without calibration images or for a non-int8 request."""
    if req.build.precision != "int8":
        raise UsageError("analyze compares an int8 build with fp32: use --precision int8")
    if req.calib.images is None:
        raise UsageError("analyze needs calibration images: pass --calib-images DIR")
    exported, built = build_onnx(config, req, workdir)
    key = artifacts.stage_key({"format": ANALYSIS_FORMAT, "build": built.manifest.get("key"), "images": images})
    path = artifacts.row_workdir(config.name, workdir) / "analysis" / f"{built.quant}-{key}.json"
    result, reused = cached_json(path, lambda: _compute(config, req, workdir, exported, built, images, progress))
    png = path.with_suffix(".png")
    if not png.is_file():
        from vacc_deploy.report.charts import layer_error_plot

        layer_error_plot(result["layers"], png, title=f"{config.name} int8 ({result['quant']}): error per layer")
    return result, path, reused


def ranked_layers(analysis: dict[str, Any]) -> list[dict[str, Any]]:
    """The analysed int8 layers (network output row left out), worst first: lowest SQNR of the layer
    quantized alone, ties broken by the accumulated SQNR."""
    def sq(v: Any) -> float:
        return float("inf") if v == "inf" else float(v)
    rows = [r for r in analysis["layers"] if r["conv_index"] is not None]
    return sorted(rows, key=lambda r: (sq(r["alone_sqnr_db"]), sq(r["accumulated_sqnr_db"])))


def with_int8(req: ModelRequest) -> ModelRequest:
    """``req`` as an int8 request (analysis always looks at an int8 build)."""
    return dataclasses.replace(req, build=dataclasses.replace(req.build, precision="int8"))
