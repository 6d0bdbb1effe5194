"""Benchmark every model row (or --rows) at its default shape on ONNX Runtime (fp32, fp16, int8;
--torch adds the PyTorch reference) and write one JSON plus a Markdown table (docs/benchmarks.md)
with the machine description and the command that produced it.

Official weights are used where the row's checkpoint is in ``$VACC_DEPLOY_WEIGHTS`` or --weights-dir,
else the synthetic-v1 weights (labelled in the table; speed does not depend on the weights). int8 is
calibrated on --calib-images with --num samples. Each configuration runs in a fresh process (see
:mod:`vacc_deploy.bench_worker`). The big rows (EDSR at 256x256, Bicubic++ at 1080p) take long on
a few cores: use --rows and --iters.

    PYTHONPATH=. python scripts/bench_all.py --rows lesrcnn_x2,bicubic_pp_x3 --iters 5
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def official_weights(row: str, weights_dir: Path) -> str:
    """The row's official checkpoint path if present locally, else ``synthetic``."""
    from vacc_deploy.config import load_row

    official = load_row(row).weights.official
    if official is None:
        return "synthetic"
    for folder in [os.environ.get("VACC_DEPLOY_WEIGHTS"), str(weights_dir)]:
        if folder and (Path(folder) / official.file).is_file():
            return str(Path(folder) / official.file)
    return "synthetic"


def bench_row(row: str, args: argparse.Namespace) -> dict[str, Any]:
    """One row's benchmark document (as ``vacc-deploy benchmark --json`` writes it)."""
    from vacc_deploy.cli import build_parser
    from vacc_deploy.cli.benchmark_cmd import benchmark
    from vacc_deploy.config import load_row

    argv = ["benchmark", row, "--weights", official_weights(row, args.weights_dir),
            "--backends", "onnxruntime,torch" if args.torch else "onnxruntime", "--precisions", args.precisions,
            "--iters", str(args.iters), "--warmup", str(args.warmup), "--calib-images", str(args.calib_images),
            "--num", str(args.num)]
    argv += ["--workdir", str(args.workdir)] if args.workdir else []
    argv += ["--threads", str(args.threads)] if args.threads else []
    return benchmark(load_row(row), build_parser().parse_args(argv))


def _probe(r: dict[str, Any]) -> str:
    p = r.get("cpu_probe_ms")
    return f"{p['before']:.0f}/{p['after']:.0f}" if p else "-"


def markdown(docs: list[dict[str, Any]], failures: dict[str, str], command: str) -> str:
    """The Markdown page: machine, versions, command, one line per row × configuration."""
    from vacc_deploy import artifacts

    m, v = artifacts.machine(), artifacts.tool_versions()
    lines = ["# Benchmarks", "", f"Measured {datetime.date.today().isoformat()} on {m.get('cpu_model') or m['processor']} "
             f"({', '.join(m.get('cpu_flags', []))}), "
             f"{m['cpu_count']} CPUs ({m['platform']}); " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".", "",
             "Reproduce with:", "", "```bash", command, "```", "",
             "Latency is per batch (ms, median and 90th percentile of the timed runs after warm-up); noise is "
             "the relative median absolute deviation (two runs agree when their p50 differ by less than about "
             "3x it). img/s and MP/s (output megapixels) are from p50; peak RSS is per configuration (fresh "
             "process); GFLOP/s = 2 x MACs of Conv/MatMul / p50. Synthetic weights are labelled: their speed "
             "equals the official model's, their outputs are meaningless. probe ms: a fixed matrix product "
             "timed before/after each configuration; on a shared machine, rows whose probes differ were "
             "measured under different load and are not comparable.", "",
             "| row | weights | shape | backend | precision | quant | p50 ms | p90 ms | noise | first ms | img/s "
             "| MP/s | RSS MB | GFLOP/s | probe ms |", "|" + "---|" * 15]
    for d in docs:
        shape = "x".join(map(str, d["input_shape"]))
        for r in d["results"]:
            lat = r["latency_ms"]
            w = "synthetic" if r["weights"].startswith("synthetic") else "official"
            lines.append(f"| {d['row']} | {w} | {shape} | {r['backend']} | {r['precision']} | {r['quant'] or '-'} | "
                         f"{lat['p50']:.1f} | {lat['p90']:.1f} | {r['noise']['rel_mad']:.1%} | {r['first_run_ms']:.0f} | "
                         f"{r['images_per_s']:.2f} | {r['megapixels_per_s']:.3f} | {r['peak_rss_mb']:.0f} | "
                         f"{r['gflops_per_s']:.1f} | {_probe(r)} |")
    lines += [""] + [f"- **{row}** failed: {msg}" for row, msg in failures.items()]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    from vacc_deploy import artifacts
    from vacc_deploy.config import available_rows
    from vacc_deploy.errors import VaccError

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default=None, help="comma-separated rows (default: all)")
    p.add_argument("--torch", action="store_true", help="also benchmark the PyTorch reference (fp32)")
    p.add_argument("--precisions", default="fp32,fp16,int8")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--weights-dir", type=Path, default=REPO.parent / "shared" / "data" / "weights")
    p.add_argument("--calib-images", type=Path, default=REPO.parent / "shared" / "data" / "images" / "RealSRSet")
    p.add_argument("--num", type=int, default=8, help="int8 calibration samples (default 8)")
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--json", type=Path, default=REPO / "docs" / "benchmarks.json")
    p.add_argument("--markdown", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = p.parse_args(argv)
    rows = args.rows.split(",") if args.rows else available_rows()
    docs, failures = [], {}
    for row in rows:
        print(f"== {row}", flush=True)
        try:
            docs.append(bench_row(row, args))
        except VaccError as exc:
            failures[row] = str(exc)
            print(f"  failed: {exc}", file=sys.stderr)
    command = "PYTHONPATH=. python scripts/bench_all.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    artifacts.atomic_write_json(args.json, {"command": command, "machine": artifacts.machine(),
                                            "versions": artifacts.tool_versions(), "rows": docs, "failures": failures})
    artifacts.atomic_write_text(args.markdown, markdown(docs, failures, command))
    print(f"wrote {args.json} and {args.markdown}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
