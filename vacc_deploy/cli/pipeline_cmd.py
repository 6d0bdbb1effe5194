"""Run the whole flow for a row: export, calibrate, build each precision, eval, benchmark, report.
Every stage is reused when its inputs are unchanged. Works offline: with no --dataset it evaluates
on real photos shipped with scikit-image; with no official checkpoint it uses the row's house weights,
or synthetic weights for a row without them (said loudly in the output and the report)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from vacc_deploy.backends import DEFAULT_BACKEND
from vacc_deploy.cli.common import add_model_args, add_row, overlap_of, request_from_args, split_list
from vacc_deploy.types import DEFAULT_ITERS, DEFAULT_WARMUP, PRECISIONS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_row(parser)
    parser.add_argument("--dataset", type=Path, default=None, metavar="DIR",
                        help="evaluation set (default: scikit-image sample photos, HR only)")
    parser.add_argument("--iters", type=int, default=DEFAULT_ITERS, metavar="N",
                        help=f"benchmark timed runs (default {DEFAULT_ITERS})")
    parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, metavar="N",
                        help=f"benchmark warm-up runs (default {DEFAULT_WARMUP})")
    parser.add_argument("--no-benchmark", action="store_true", help="skip the benchmark stage")
    add_model_args(parser, backends=(DEFAULT_BACKEND,), multi=True, precisions=",".join(PRECISIONS))


def run(args: argparse.Namespace) -> int:
    from vacc_deploy.config import load_row
    from vacc_deploy.pipeline.run import PipelineOptions, run_pipeline

    t0 = time.perf_counter()
    config = load_row(args.row)
    precisions = split_list(args.precisions)
    quants = split_list(args.quant) or None
    opts = PipelineOptions(request=request_from_args(args), dataset=args.dataset, precisions=precisions,
                           quants=quants, iters=args.iters, warmup=args.warmup, benchmark=not args.no_benchmark,
                           overlap=overlap_of(args))
    logging.getLogger("vacc_deploy").info("%s: pipeline (%s)", config.name, ", ".join(precisions))
    res = run_pipeline(config, opts, args.workdir)
    for note in res.notes:
        print(f"WARNING: {note}", file=sys.stderr)
    reused = all(r.status in ("reused", "skipped") for r in res.stages)
    print(f"{config.name}: {'nothing to do, every stage reused' if reused else 'done'} "
          f"in {time.perf_counter() - t0:.1f} s")
    print(f"report: {res.report_dir / 'report.html'} (and report.md)")
    return 0
