"""Benchmark a row: latency, throughput, peak memory and GFLOP/s per backend and precision."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from vacc_deploy.cli.common import add_model_args, add_row, request_from_args
from vacc_deploy.config import RowConfig, load_row
from vacc_deploy.errors import UsageError

BENCH_BACKENDS = ("onnxruntime", "torch")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_row(parser)
    parser.add_argument("--backends", default="onnxruntime", metavar="LIST",
                        help="comma-separated: onnxruntime,torch (torch runs fp32 only; default onnxruntime)")
    parser.add_argument("--iters", type=int, default=20, metavar="N", help="timed runs (default 20)")
    parser.add_argument("--warmup", type=int, default=3, metavar="N",
                        help="untimed runs after the first run (default 3)")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="write results as JSON")
    parser.add_argument("--image", type=Path, default=None, metavar="PATH",
                        help="also time this LR image end to end (tiling, pre/post-processing)")
    parser.add_argument("--plot", type=Path, default=None, metavar="FILE.png", help="bar plot of images/s")
    add_model_args(parser, backends=None, multi=True)


def configurations(config: RowConfig, backends: str, precisions: str, quant: str | None
                   ) -> list[tuple[str, str, str | None]]:
    """(backend, precision, int8 method) triples to measure. torch runs fp32 only (whatever
    ``precisions`` says); int8 is measured once per calibration method."""
    names = [b.strip() for b in backends.split(",") if b.strip()]
    bad = [b for b in names if b not in BENCH_BACKENDS]
    if bad or not names:
        raise UsageError(f"--backends: unknown backend '{bad[0] if bad else ''}' (expected {', '.join(BENCH_BACKENDS)})")
    wanted = [p.strip() for p in precisions.split(",") if p.strip()]
    badp = [p for p in wanted if p not in ("fp32", "fp16", "int8")]
    if badp or not wanted:
        raise UsageError(f"--precisions: unknown precision '{badp[0] if badp else ''}' (expected fp32, fp16, int8)")
    methods = [m.strip() for m in (quant or config.quant.method).split(",") if m.strip()]
    out: list[tuple[str, str, str | None]] = []
    for backend in names:
        if backend == "torch":
            out.append(("torch", "fp32", None))
            continue
        for p in ("fp32", "fp16", "int8"):
            if p in wanted:
                out += [(backend, p, m) for m in methods] if p == "int8" else [(backend, p, None)]
    return out


def _job(config: RowConfig, args: argparse.Namespace, backend: str, precision: str, method: str | None):
    """Build (or reuse) the model of one configuration; returns (BenchJob, BuiltModel, flops)."""
    from vacc_deploy.bench import model_flops
    from vacc_deploy.bench_worker import BenchJob
    from vacc_deploy.imaging.tiling import DEFAULT_OVERLAP
    from vacc_deploy.pipeline import build_stage

    base = dataclasses.replace(request_from_args(args), backend=backend)
    built = build_stage(config, base.with_precision(precision, method), args.workdir)
    onnx_model = built if backend != "torch" else build_stage(
        config, dataclasses.replace(base, backend="onnxruntime").with_precision("fp32"), args.workdir)
    job = BenchJob(backend=backend, row=args.row, input_shape=tuple(onnx_model.input_shape),
                   spec_json=built.spec.to_json(), onnx_path=str(built.onnx_path) if built.onnx_path else None,
                   weights=built.weights, threads=args.threads, iters=args.iters, warmup=args.warmup,
                   image=str(args.image) if args.image else None,
                   overlap=DEFAULT_OVERLAP if args.overlap is None else args.overlap)
    return job, built, model_flops(onnx_model.onnx_path)


def _record(backend: str, built, flops: int, measured: dict[str, Any]) -> dict[str, Any]:
    """One SPEC §6 result entry."""
    keep = ("latency_ms", "first_run_ms", "images_per_s", "megapixels_per_s", "peak_rss_mb", "noise", "iters",
            "warmup", "session_open_ms", "output_shape", "cpu_probe_ms", "torch_imported")
    rec = {"backend": backend, "precision": built.precision, "quant": built.quant, "weights": built.label}
    rec.update({k: measured[k] for k in keep if k in measured})
    rec["flops"] = flops
    rec["gflops_per_s"] = flops / (measured["latency_ms"]["p50"] / 1e3) / 1e9
    return rec


def benchmark(config: RowConfig, args: argparse.Namespace) -> dict[str, Any]:
    """Measure every configuration, each in a fresh worker process. Returns the SPEC §6 document."""
    from vacc_deploy import artifacts
    from vacc_deploy.bench_worker import run_job

    triples = configurations(config, args.backends, args.precisions, args.quant)
    results, e2e, shape = [], [], None
    for backend, precision, method in tqdm(triples, desc=f"benchmark {config.name}", unit="cfg", file=sys.stderr):
        job, built, flops = _job(config, args, backend, precision, method)
        measured = run_job(job)
        shape = list(job.input_shape)
        results.append(_record(backend, built, flops, measured))
        if "end_to_end" in measured:
            e2e.append({"backend": backend, "precision": built.precision, "quant": built.quant,
                        **measured["end_to_end"]})
    doc: dict[str, Any] = {
        "row": config.name, "input_shape": shape, "machine": artifacts.machine(),
        "versions": artifacts.tool_versions(), "threads": args.threads or os.cpu_count(),
        "iters": args.iters, "warmup": args.warmup, "results": results,
    }
    if args.image:
        doc["end_to_end"] = {"image": str(args.image), "results": e2e}
    return doc


def _probe(r: dict[str, Any]) -> str:
    p = r.get("cpu_probe_ms")
    return f"{p['before']:.0f}/{p['after']:.0f}" if p else "-"


def print_table(doc: dict[str, Any]) -> None:
    shape = "x".join(str(d) for d in doc["input_shape"])
    print(f"{doc['row']} at {shape}, {doc['iters']} timed runs after {doc['warmup']} warm-up, "
          f"{doc['threads']} threads")
    head = (f"{'backend':<12} {'prec':<5} {'quant':<13} {'p50 ms':>9} {'p90 ms':>9} {'mean ms':>9} {'noise':>6} "
            f"{'first ms':>9} {'img/s':>8} {'MP/s':>7} {'RSS MB':>7} {'GFLOP/s':>8} {'probe ms':>9}")
    print(head)
    print("-" * len(head))
    print("noise: relative MAD of the timed runs; probe ms: a fixed matmul before/after (machine load drift)")
    for r in doc["results"]:
        lat = r["latency_ms"]
        print(f"{r['backend']:<12} {r['precision']:<5} {r['quant'] or '-':<13} {lat['p50']:>9.2f} {lat['p90']:>9.2f} "
              f"{lat['mean']:>9.2f} {r['noise']['rel_mad']:>6.1%} {r['first_run_ms']:>9.1f} "
              f"{r['images_per_s']:>8.2f} {r['megapixels_per_s']:>7.3f} {r['peak_rss_mb']:>7.0f} "
              f"{r['gflops_per_s']:>8.1f} {_probe(r):>9}")
    for e in doc.get("end_to_end", {}).get("results", []):
        over = "-" if e["tiling_overhead"] is None else f"{e['tiling_overhead']:.2f}x"
        print(f"end-to-end {e['backend']}/{e['precision']}{'/' + e['quant'] if e['quant'] else ''}: "
              f"{e['ms']:.1f} ms for {e['lr_hw'][0]}x{e['lr_hw'][1]} ({e['tiles']} tiles, "
              f"{e['model_calls']} calls), tiling overhead {over}")


def run(args: argparse.Namespace) -> int:
    from vacc_deploy import artifacts

    config = load_row(args.row)
    if args.image is not None and not args.image.is_file():
        raise UsageError(f"--image {args.image}: no such file")
    doc = benchmark(config, args)
    print_table(doc)
    if args.json:
        artifacts.atomic_write_json(args.json, doc)
        print(f"results written to {args.json}")
    if args.plot:
        from vacc_deploy.plots import bar_images_per_s

        bar_images_per_s(doc["results"], args.plot, title=f"{doc['row']} {'x'.join(map(str, doc['input_shape']))}")
        print(f"plot written to {args.plot}")
    return 0
