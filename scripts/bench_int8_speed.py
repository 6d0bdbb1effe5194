"""Acceptance check: the int8 ONNX model of lesrcnn_x2 (or --row) at 1x3x128x128 is at least 2x faster than fp32
on ONNX Runtime (median of --iters timed runs after --warmup warm-up runs, each in a fresh process).

Measures the fastest int8 build by default (7-bit weights on x86 without VNNI, every op type int8 so
that each int8 Conv fuses into a QLinearConv; `build`'s own default is accuracy-first, see
docs/accuracy.md). Builds both through the pipeline (official weights, int8 calibrated on RealSRSet), prints the
ratio fp32 p50 / int8 p50 (measured in fresh processes one after the other, and interleaved in
one process, which the pass/fail uses: on a shared machine load drifts between measurements), and
the operator counts of ORT's optimized int8 graph (which QDQ groups
were fused into QLinearConv and which stayed as DequantizeLinear → float op → QuantizeLinear), and
exits 1 when the ratio is below --min-ratio.

    PYTHONPATH=. python scripts/bench_int8_speed.py [--weights PATH] [--calib-images DIR] [--num 8]
        [--quant METHOD] [--reduce-range auto|on|off] [--int8-ops compute|all] [--threads N]
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"

if TYPE_CHECKING:
    from vacc_deploy.backends import BuiltModel


def optimized_op_counts(onnx_path: Path, threads: int | None = None) -> dict[str, int]:
    """Operator counts of the graph ONNX Runtime actually runs (after its graph optimisations)."""
    import onnx
    import onnxruntime as ort

    from vacc_deploy.backends.ort.session import session_options

    with tempfile.TemporaryDirectory() as tmp:
        opts = session_options(threads)
        opts.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        model = onnx.load(opts.optimized_model_filepath)
    return dict(collections.Counter(n.op_type for n in model.graph.node).most_common())


def interleaved_p50(paths: list[Path], x_shape: tuple[int, ...], iters: int, warmup: int,
                    threads: int | None = None) -> list[float]:
    """p50 (ms) of each model when their runs alternate (A, B, A, B, ...) in one process: load drift
    on a shared machine then hits every model alike, so their ratio is fairer than that of
    measurements taken one after the other."""
    import time

    import numpy as np

    from vacc_deploy.backends.ort.session import OrtSession

    sessions = [OrtSession(p, threads) for p in paths]
    x = np.random.default_rng(0).random(x_shape, dtype=np.float32)
    for s in sessions:
        for _ in range(1 + warmup):
            s.run(x)
    times: list[list[float]] = [[] for _ in sessions]
    for _ in range(iters):
        for s, t in zip(sessions, times):
            t0 = time.perf_counter()
            s.run(x)
            t.append((time.perf_counter() - t0) * 1e3)
    return [float(np.median(t)) for t in times]


def _default_weights(row: str) -> str:
    """The row's official checkpoint under ../shared if it is there, else its house weights."""
    official = SHARED / "weights" / f"{row}.pth"
    return str(official) if official.is_file() else "house"


def _built(args: argparse.Namespace, precision: str, reduce_range: str, int8_ops: str) -> BuiltModel:
    """The --row model at 1x3x128x128 of this precision and int8 build (int8 method --quant), built
    (or reused) by the pipeline."""
    from vacc_deploy.backends import BuildOptions
    from vacc_deploy.config import load_row
    from vacc_deploy.pipeline import CalibRequest, ModelRequest, build

    req = ModelRequest(weights=args.weights or _default_weights(args.row), shape=(1, 3, 128, 128),
                       build=BuildOptions(reduce_range=reduce_range, int8_ops=int8_ops),
                       calib=CalibRequest(images=args.calib_images, num=args.num))
    quant = args.quant if precision == "int8" else None
    return build(load_row(args.row), req.with_precision(precision, quant), args.workdir)


def compare(args: argparse.Namespace) -> None:
    """Print p50 and speed-up over fp32 of the four int8 builds, all runs interleaved in one process."""
    variants = {"fp32": ("fp32", "off", "compute")}
    variants.update({f"int8 {bits}, {ops}": ("int8", rr, ops)
                     for ops in ("compute", "all") for bits, rr in (("8-bit", "off"), ("7-bit", "on"))})
    paths = [_built(args, *v).onnx_path for v in variants.values()]
    for name, path in zip(variants, paths):
        if name != "fp32":
            print(f"{name}: ORT optimized graph ops {optimized_op_counts(path)}")
    for threads in dict.fromkeys([args.threads, 1]):
        p50 = interleaved_p50(paths, (1, 3, 128, 128), args.iters, args.warmup, threads)
        print(f"threads {threads or 'all'}: " + ", ".join(
            f"{name} {t:.1f} ms ({p50[0] / t:.2f}x)" for name, t in zip(variants, p50)), flush=True)


def main(argv: list[str] | None = None) -> int:
    from vacc_deploy.benchmark.worker import BenchJob, run_job

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--row", default="lesrcnn_x2")
    p.add_argument("--weights", default=None, help="default: the row's official checkpoint in ../shared, else house")
    p.add_argument("--calib-images", type=Path, default=SHARED / "images" / "RealSRSet")
    p.add_argument("--num", type=int, default=8)
    p.add_argument("--quant", default=None, help="int8 method (default: the row's)")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--reduce-range", choices=("auto", "on", "off"), default="auto",
                   help="7-bit int8 weights (auto: on for x86 CPUs without VNNI)")
    p.add_argument("--int8-ops", choices=("compute", "all"), default="all",
                   help="op types quantized (default all: Adds too, so every int8 Conv fuses into QLinearConv;"
                        " compute: the accuracy-first default of `build`)")
    p.add_argument("--min-ratio", type=float, default=2.0)
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--compare", action="store_true",
                   help="instead: fp32 and the four int8 builds (8/7-bit weights x compute/all op types) "
                        "interleaved, at --threads (default: all cores) and 1 thread")
    args = p.parse_args(argv)
    if args.compare:
        compare(args)
        return 0

    p50, paths = {}, {}
    for precision in ("fp32", "int8"):
        built = _built(args, precision, args.reduce_range, args.int8_ops)
        job = BenchJob(backend="onnxruntime", row=args.row, input_shape=built.input_shape,
                       spec_json=built.spec.to_json(), onnx_path=str(built.onnx_path), threads=args.threads,
                       iters=args.iters, warmup=args.warmup)
        r = run_job(job)
        p50[precision], paths[precision] = r["latency_ms"]["p50"], built.onnx_path
        print(f"{precision} ({built.quant or '-'}): p50 {p50[precision]:.2f} ms, p90 {r['latency_ms']['p90']:.2f} ms, "
              f"noise (rel. MAD) {r['noise']['rel_mad']:.1%}  [{built.onnx_path}]")
        if precision == "int8":
            print("ORT optimized int8 graph ops:", optimized_op_counts(built.onnx_path, args.threads))
    print(f"separate processes, one after the other: int8 speed-up {p50['fp32'] / p50['int8']:.2f}x")
    a, b = interleaved_p50([paths["fp32"], paths["int8"]], (1, 3, 128, 128), args.iters, args.warmup, args.threads)
    ratio = a / b
    ok = ratio >= args.min_ratio
    print(f"interleaved in one process: fp32 p50 {a:.2f} ms, int8 p50 {b:.2f} ms")
    print(f"int8 speed-up over fp32 (interleaved p50): {ratio:.2f}x -> {'PASS' if ok else 'FAIL'} "
          f"(need >= {args.min_ratio}x)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
