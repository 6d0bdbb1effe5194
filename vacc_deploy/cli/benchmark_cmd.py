"""Benchmark a row: latency, throughput, peak memory and GFLOP/s per backend and precision."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vacc_deploy.backends import BACKENDS, DEFAULT_BACKEND
from vacc_deploy.cli.common import add_model_args, add_row, backends_help, overlap_of, request_from_args, split_list
from vacc_deploy.types import DEFAULT_ITERS, DEFAULT_WARMUP
from vacc_deploy.config import RowConfig, load_row
from vacc_deploy.errors import BackendUnavailable, UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_row(parser)
    parser.add_argument("--backends", default=DEFAULT_BACKEND, metavar="LIST",
                        help=f"comma-separated, of {backends_help(tuple(BACKENDS))}. A backend that runs "
                             f"fp32 only is measured at fp32 whatever --precisions says (default {DEFAULT_BACKEND})")
    parser.add_argument("--iters", type=int, default=DEFAULT_ITERS, metavar="N",
                        help=f"timed runs (default {DEFAULT_ITERS})")
    parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, metavar="N",
                        help=f"untimed runs after the first run (default {DEFAULT_WARMUP})")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="write results as JSON")
    parser.add_argument("--image", type=Path, default=None, metavar="PATH",
                        help="also time this LR image end to end (tiling, pre/post-processing); a folder: "
                             "all its images (an evaluation set such as Set14: its LR images at the row's scale)")
    parser.add_argument("--plot", type=Path, default=None, metavar="FILE.png", help="bar plot of images/s")
    add_model_args(parser, backends=None, multi=True)


def configurations(config: RowConfig, backends: str, precisions: str, quant: str | None
                   ) -> list[tuple[str, str, str | None]]:
    """(backend, precision, int8 method) triples to measure: each registered backend named, at the
    precisions it runs (one that runs fp32 only, e.g. torch, at fp32 whatever ``precisions`` says);
    int8 once per calibration method. Raises UsageError for an unknown backend or precision,
    BackendUnavailable (with its reason) for a backend that cannot run here."""
    from vacc_deploy.pipeline.requests import variants

    names = split_list(backends)
    bad = [b for b in names if b not in BACKENDS]
    if bad or not names:
        raise UsageError(f"--backends: unknown backend '{bad[0] if bad else ''}' (expected {', '.join(BACKENDS)})")
    for name in names:
        reason = BACKENDS[name].unavailable_reason()
        if reason:
            raise BackendUnavailable(f"--backends {name}: unavailable here ({reason})")
    wanted = split_list(precisions)
    if not wanted:
        raise UsageError("--precisions: unknown precision '' (expected fp32, fp16, int8)")
    builds = variants(config, wanted, split_list(quant), with_fp32=False)
    out: list[tuple[str, str, str | None]] = []
    for name in names:
        runs = BACKENDS[name].precisions
        out += [(name, "fp32", None)] if runs == ("fp32",) else [(name, p, m) for p, m in builds if p in runs]
    return out


def benchmark(config: RowConfig, args: argparse.Namespace) -> dict[str, Any]:
    """Build (or reuse) and measure every configuration the arguments name
    (:func:`vacc_deploy.pipeline.benchmark_stage`)."""
    from vacc_deploy.pipeline import BenchSettings, benchmark_stage

    triples = configurations(config, args.backends, args.precisions, args.quant)
    settings = BenchSettings(row_ref=args.row, iters=args.iters, warmup=args.warmup, threads=args.threads,
                             image=args.image, overlap=overlap_of(args))
    return benchmark_stage(config, request_from_args(args), triples, args.workdir, settings)


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
    for r in doc["results"]:
        c = r.get("calibration") or {}
        if c.get("seconds_per_image") is not None:
            print(f"calibration of {r['backend']} int8 {r['quant']}: {c['images']} samples, "
                  f"{c['seconds_per_image']:.2f} s/img, {c.get('segments') or '?'} segment(s)"
                  + (f", peak RSS {c['peak_rss_mb']:.0f} MB" if c.get("peak_rss_mb") else ""))
    print_speed_notes(doc)
    for e in doc.get("end_to_end", {}).get("results", []):
        over = "-" if e["tiling_overhead"] is None else f"{e['tiling_overhead']:.2f}x"
        what = f"{e['lr_hw'][0]}x{e['lr_hw'][1]}" if "lr_hw" in e else f"{e['images']} images"
        print(f"end-to-end {e['backend']}/{e['precision']}{'/' + e['quant'] if e['quant'] else ''}: "
              f"{e['ms']:.1f} ms for {what} ({e['tiles']} tiles, {e['model_calls']} calls), "
              f"{e['megapixels_per_s']:.3f} MP/s, tiling overhead {over}")


def print_speed_notes(doc: dict[str, Any]) -> None:
    """Why an int8/fp16 line is not faster than fp32, and (int8) the flags of the faster build."""
    from vacc_deploy.benchmark.notes import speed_notes

    for note in speed_notes(doc):
        print(f"why: {note}")
        if note.startswith("int8"):
            print("     the 7-bit build: --reduce-range on (fastest: --reduce-range on --int8-ops all)")


def run(args: argparse.Namespace) -> int:
    from vacc_deploy import artifacts

    config = load_row(args.row)
    if args.image is not None and not args.image.exists():
        raise UsageError(f"--image {args.image}: no such file or folder")
    doc = benchmark(config, args)
    print_table(doc)
    if args.json:
        artifacts.atomic_write_json(args.json, doc)
        print(f"results written to {args.json}")
    if args.plot:
        from vacc_deploy.report.charts import bar_images_per_s

        bar_images_per_s(doc["results"], args.plot, title=f"{doc['row']} {'x'.join(map(str, doc['input_shape']))}")
        print(f"plot written to {args.plot}")
    return 0
