"""The int8 layer-analysis stage: per-layer SQNR / cosine of an int8 build against fp32 over the
build's own calibration samples (see :mod:`vacc_deploy.evaluation.analysis`), cached as JSON under
``<workdir>/<row>/analysis/`` with a PNG plot beside it. Torch-free.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vacc_deploy import artifacts
from vacc_deploy.backends import BuiltModel
from vacc_deploy.calibration.dataset import CalibSource
from vacc_deploy.errors import UsageError
from vacc_deploy.pipeline.cache import cached_json
from vacc_deploy.pipeline.stages import Upstream
from vacc_deploy.progress import progress_bar

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


def _compute(up: Upstream, built: BuiltModel, images: int | None, progress: bool) -> dict[str, Any]:
    from vacc_deploy.evaluation.analysis import analyze_layers

    assert up.calib is not None and built.onnx_path is not None
    source = _FirstN(CalibSource(up.calib, up.exported.spec), images)
    t0 = time.perf_counter()
    with progress_bar(total=len(source), desc=f"analyze {up.config.name}", unit="img", disable=not progress,
                      leave=False) as bar:
        layers = analyze_layers(up.exported.onnx_path, built.onnx_path, source, progress=bar.update)
    return {"format": ANALYSIS_FORMAT, "row": up.config.name, "precision": "int8", "quant": built.quant,
            "build": str(built.folder), "settings": built.manifest.get("settings", {}),
            "float_layers": built.manifest.get("float_layers", []), "images": len(source),
            "calib_sha256": up.calib.sha256, "seconds": time.perf_counter() - t0,
            "layers": [layer.to_dict() for layer in layers]}


def analysis_stage(up: Upstream, built: BuiltModel, *, images: int | None = None,
                   progress: bool = True) -> tuple[dict[str, Any], Path, bool]:
    """Analyse the ONNX Runtime int8 build ``built`` against the fp32 export over the first
    ``images`` calibration samples (all by default). Returns (analysis, JSON path, reused). The PNG
    plot is ``<json>.png``. Raises UsageError (options ``calib_images``, ``precision``) without
    calibration images or for a build that is not an int8 ONNX file."""
    if up.calib is None:
        raise UsageError("the analysis needs calibration images (none given)", option="calib_images")
    if built.precision != "int8" or built.onnx_path is None:
        raise UsageError("the analysis compares an int8 ONNX build with fp32", option="precision")
    key = artifacts.stage_key({"format": ANALYSIS_FORMAT, "build": built.manifest.get("key"), "images": images})
    path = artifacts.row_workdir(up.config.name, up.workdir) / "analysis" / f"{built.quant}-{key}.json"
    result, reused = cached_json(path, lambda: _compute(up, built, images, progress))
    png = path.with_suffix(".png")
    if not png.is_file():
        from vacc_deploy.report.charts import layer_error_plot

        layer_error_plot(result["layers"], png, title=f"{up.config.name} int8 ({result['quant']}): error per layer")
    return result, path, reused
