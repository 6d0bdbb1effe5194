"""Benchmark orchestration: measure each built model in its own worker process
(:mod:`vacc_deploy.benchmark.worker`), returning the SPEC section 6 document. It measures; the
models come built (:func:`vacc_deploy.pipeline.benchmark_stage` builds them). Used by
``vacc-deploy benchmark`` and the pipeline. Torch-free unless the torch backend is measured."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vacc_deploy import machine
from vacc_deploy.backends import BuiltModel, get_backend
from vacc_deploy.benchmark.worker import BenchJob, run_job
from vacc_deploy.progress import progress_bar
from vacc_deploy.types import DEFAULT_ITERS, DEFAULT_OVERLAP, DEFAULT_WARMUP

#: A benchmark configuration: (backend, precision, int8 method).
Config = tuple[str, str, "str | None"]


@dataclass(frozen=True)
class BenchTarget:
    """One configuration to measure: the backend, the model it runs, the input shape (N, C, H, W)
    the benchmark feeds it, and the model's FLOPs (:func:`vacc_deploy.benchmark.measure.model_flops`)."""

    backend: str
    built: BuiltModel
    input_shape: tuple[int, int, int, int]
    flops: int


@dataclass(frozen=True)
class BenchSettings:
    """How to measure: timed and warm-up runs, CPU threads (None: all), an LR image or folder timed
    end to end, tile overlap, and the row as the worker loads it (a name or a YAML path)."""

    row_ref: str
    iters: int = DEFAULT_ITERS
    warmup: int = DEFAULT_WARMUP
    threads: int | None = None
    image: Path | None = None
    overlap: int = DEFAULT_OVERLAP


def _job(t: BenchTarget, s: BenchSettings) -> BenchJob:
    b = t.built
    return BenchJob(backend=t.backend, row=s.row_ref, input_shape=t.input_shape, spec_json=b.spec.to_json(),
                    onnx_path=str(b.onnx_path) if b.onnx_path else None, weights=b.weights, threads=s.threads,
                    iters=s.iters, warmup=s.warmup, image=str(s.image) if s.image else None, overlap=s.overlap)


def _record(t: BenchTarget, measured: dict[str, Any]) -> dict[str, Any]:
    """One SPEC section 6 result entry."""
    keep = ("latency_ms", "first_run_ms", "images_per_s", "megapixels_per_s", "peak_rss_mb", "noise", "iters",
            "warmup", "session_open_ms", "output_shape", "cpu_probe_ms", "torch_imported")
    b = t.built
    rec = {"backend": t.backend, "precision": b.precision, "quant": b.quant, "weights": b.label}
    rec.update({k: measured[k] for k in keep if k in measured})
    if get_backend(t.backend).artifact == "onnx" and b.precision == "int8" and b.onnx_path is not None:
        from vacc_deploy.backends.ort.session import int8_8bit_weights

        rec["int8_weight_bits"] = 8 if int8_8bit_weights(b.onnx_path) else 7  # the speed notes read it
    calib = b.manifest.get("calibration") if b.precision == "int8" else None
    if calib:  # what the int8 build's calibration cost (absent from builds cached by older versions)
        rec["calibration"] = {k: calib.get(k) for k in ("images", "method", "seconds_per_image", "segments",
                                                         "peak_rss_mb")}
    rec["flops"] = t.flops
    rec["gflops_per_s"] = t.flops / (measured["latency_ms"]["p50"] / 1e3) / 1e9
    return rec


def benchmark_row(row: str, targets: Sequence[BenchTarget], settings: BenchSettings) -> dict[str, Any]:
    """Measure every target of row ``row``, each in a fresh worker process (own peak RSS).
    Returns the SPEC section 6 benchmark document."""
    results, e2e, shape = [], [], None
    for t in progress_bar(targets, desc=f"benchmark {row}", unit="cfg"):
        measured = run_job(_job(t, settings))
        shape = list(t.input_shape)
        results.append(_record(t, measured))
        if "end_to_end" in measured:
            e2e.append({"backend": t.backend, "precision": t.built.precision, "quant": t.built.quant,
                        **measured["end_to_end"]})
    doc: dict[str, Any] = {
        "row": row, "input_shape": shape, "machine": machine.machine(),
        "versions": machine.tool_versions(), "threads": settings.threads or os.cpu_count(),
        "iters": settings.iters, "warmup": settings.warmup, "results": results,
    }
    if settings.image:
        doc["end_to_end"] = {"image": str(settings.image), "results": e2e}
    return doc
