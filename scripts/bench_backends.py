"""Speed ratios of backends on one row, measured interleaved in one process (load drifts on a
shared machine; round-robin runs share it). Builds through the pipeline (cached), opens one
session per (backend, precision) through the registry, runs --warmup untimed runs each, then
--rounds rounds of one timed run per session (order rotated each round). Prints p50 per
configuration and the median of the per-round ratios reference-time / time (>1: faster than the
reference, the first configuration).

    PYTHONPATH=. python scripts/bench_backends.py lesrcnn_x2 --weights PATH --calib-images DIR \
        --backends onnxruntime,openvino --precisions fp32,int8 [--rounds 20] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vacc_deploy.backends import SessionOptions, open_session  # noqa: E402
from vacc_deploy.backends import BuildOptions  # noqa: E402
from vacc_deploy.config import load_row  # noqa: E402
from vacc_deploy.pipeline import CalibRequest, ModelRequest, build  # noqa: E402


def sessions(args: argparse.Namespace) -> list[tuple[str, object, object]]:
    config = load_row(args.row)
    out = []
    for backend in args.backends.split(","):
        for precision in args.precisions.split(","):
            req = ModelRequest(weights=args.weights, backend=backend, build=BuildOptions(precision=precision),
                               calib=CalibRequest(images=args.calib_images, num=args.num))
            built = build(config, req, args.workdir)
            label = f"{backend} {precision}{' ' + built.quant if built.quant else ''}"
            out.append((label, built, open_session(backend, built, SessionOptions(threads=args.threads))))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("row")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--calib-images", type=Path, default=None)
    ap.add_argument("--num", type=int, default=50)
    ap.add_argument("--backends", default="onnxruntime,openvino")
    ap.add_argument("--precisions", default="fp32,int8")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    runs = sessions(args)
    shape = runs[0][1].input_shape
    x = (np.random.default_rng(0).random(shape, dtype=np.float32) * runs[0][1].spec.value_range)
    for _, _, s in runs:
        for _ in range(args.warmup):
            s.run(x)
    times = np.zeros((args.rounds, len(runs)))
    for r in range(args.rounds):
        for k in range(len(runs)):
            i = (k + r) % len(runs)
            t0 = time.perf_counter()
            runs[i][2].run(x)
            times[r, i] = (time.perf_counter() - t0) * 1e3
    ratios = np.median(times[:, :1] / times, axis=0)
    print(f"{args.row} {'x'.join(map(str, shape))}, weights {runs[0][1].label}, {args.rounds} interleaved rounds")
    print(f"{'configuration':<28} {'p50 ms':>9} {'x ' + runs[0][0]:>22}")
    rows = []
    for (label, _, _), t, ratio in zip(runs, times.T, ratios):
        print(f"{label:<28} {np.median(t):>9.2f} {ratio:>22.2f}")
        rows.append({"config": label, "p50_ms": float(np.median(t)), "ratio_vs_first": float(ratio)})
    if args.json:
        args.json.write_text(json.dumps({"row": args.row, "shape": list(shape), "rounds": args.rounds, "results": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
