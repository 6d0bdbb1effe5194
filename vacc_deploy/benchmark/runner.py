"""Benchmark orchestration: build (or reuse) each configuration's model and measure it in its own
worker process (:mod:`vacc_deploy.benchmark.worker`), returning the SPEC section 6 document. Used by
``vacc-deploy benchmark`` and the pipeline. Torch-free unless the torch backend is measured."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any


from vacc_deploy import artifacts
from vacc_deploy.config import RowConfig
from vacc_deploy.progress import progress_bar

Config = tuple[str, str, str | None]  # (backend, precision, int8 method)


def _job(config: RowConfig, req, backend: str, precision: str, method: str | None, opts: dict[str, Any]):
    """Build (or reuse) the model of one configuration; returns (BenchJob, BuiltModel, flops)."""
    from vacc_deploy.benchmark.measure import model_flops
    from vacc_deploy.benchmark.worker import BenchJob
    from vacc_deploy.pipeline import build_stage

    from vacc_deploy.backends import DEFAULT_BACKEND

    base = dataclasses.replace(req, backend=backend)
    built = build_stage(config, base.with_precision(precision, method), opts["workdir"])
    # the input shape and FLOPs come from an ONNX file: the build itself, else the default backend's fp32
    onnx_model = built if built.onnx_path is not None else build_stage(
        config, dataclasses.replace(base, backend=DEFAULT_BACKEND).with_precision("fp32"), opts["workdir"])
    job = BenchJob(backend=backend, row=opts["row_ref"], input_shape=tuple(onnx_model.input_shape),
                   spec_json=built.spec.to_json(), onnx_path=str(built.onnx_path) if built.onnx_path else None,
                   weights=built.weights, threads=opts["threads"], iters=opts["iters"], warmup=opts["warmup"],
                   image=str(opts["image"]) if opts["image"] else None, overlap=opts["overlap"])
    return job, built, model_flops(onnx_model.onnx_path)


def _record(backend: str, built, flops: int, measured: dict[str, Any]) -> dict[str, Any]:
    """One SPEC section 6 result entry."""
    keep = ("latency_ms", "first_run_ms", "images_per_s", "megapixels_per_s", "peak_rss_mb", "noise", "iters",
            "warmup", "session_open_ms", "output_shape", "cpu_probe_ms", "torch_imported")
    rec = {"backend": backend, "precision": built.precision, "quant": built.quant, "weights": built.label}
    rec.update({k: measured[k] for k in keep if k in measured})
    if backend == "onnxruntime" and built.precision == "int8" and built.onnx_path is not None:
        from vacc_deploy.backends.ort.session import int8_8bit_weights

        rec["int8_weight_bits"] = 8 if int8_8bit_weights(built.onnx_path) else 7  # speed_notes reads it
    rec["flops"] = flops
    rec["gflops_per_s"] = flops / (measured["latency_ms"]["p50"] / 1e3) / 1e9
    return rec


def benchmark_row(config: RowConfig, req, configs: list[Config], *, workdir: Path | None = None,
                  iters: int = 20, warmup: int = 3, threads: int | None = None, image: Path | None = None,
                  overlap: int = 16, row_ref: str | None = None) -> dict[str, Any]:
    """Measure every (backend, precision, method) configuration of ``config``, each in a fresh
    worker process (own peak RSS). ``req`` is the base ModelRequest (weights, shape, build and
    calibration options). Returns the SPEC section 6 benchmark document."""
    from vacc_deploy.benchmark.worker import run_job

    opts = {"workdir": workdir, "iters": iters, "warmup": warmup, "threads": threads, "image": image,
            "overlap": overlap, "row_ref": row_ref or config.name}
    results, e2e, shape = [], [], None
    for backend, precision, method in progress_bar(configs, desc=f"benchmark {config.name}", unit="cfg"):
        job, built, flops = _job(config, req, backend, precision, method, opts)
        measured = run_job(job)
        shape = list(job.input_shape)
        results.append(_record(backend, built, flops, measured))
        if "end_to_end" in measured:
            e2e.append({"backend": backend, "precision": built.precision, "quant": built.quant,
                        **measured["end_to_end"]})
    doc: dict[str, Any] = {
        "row": config.name, "input_shape": shape, "machine": artifacts.machine(),
        "versions": artifacts.tool_versions(), "threads": threads or os.cpu_count(),
        "iters": iters, "warmup": warmup, "results": results,
    }
    if image:
        doc["end_to_end"] = {"image": str(image), "results": e2e}
    return doc
