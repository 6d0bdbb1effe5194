"""Interleaved A/B timing of ONNX Runtime session options on one ONNX model (the table of
docs/ort_tuning.md): variants run in turn (A, B, C, A, B, C, ...) so load drift hits each alike;
prints each variant's median latency and its ratio to the first (the current defaults).

With --profile, instead: where the time goes with today's defaults, per operator type (ORT's
profiler, kernel time per run), for one or several models.

Usage: python scripts/ort_ab.py MODEL.onnx [--rounds 20] [--warmup 3]
       python scripts/ort_ab.py --profile MODEL.onnx [MODEL.onnx ...] [--rounds 8]
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from vacc_deploy.backends.ort.session import int8_8bit_weights, session_options
from vacc_deploy.machine import x86_without_vnni


def _variants(accurate: bool) -> dict[str, ort.SessionOptions]:
    base = session_options(None, accurate)
    spin = session_options(None, accurate)
    spin.add_session_config_entry("session.intra_op.allow_spinning", "1")
    one = session_options(1, accurate)
    ext = session_options(None, accurate)
    ext.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    ext.enable_mem_pattern = False
    return {"defaults (no spinning, all cores)": base, "spinning on": spin, "1 intra-op thread": one,
            "EXTENDED optimisation, no mem pattern": ext}


def profile(model: Path, rounds: int) -> dict[str, float]:
    """Kernel time (ms per run) of each operator type of ``model`` under today's session options,
    from ORT's profiler over ``rounds`` runs (one untimed run first); sorted, largest first."""
    opts = session_options(None, int8_8bit_weights(model) and x86_without_vnni())
    opts.enable_profiling = True
    sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    x = np.random.default_rng(0).random(inp.shape, dtype=np.float32)
    for _ in range(1 + rounds):
        sess.run(None, {inp.name: x})
    trace = Path(sess.end_profiling())
    events = json.loads(trace.read_text())
    trace.unlink()
    first_timed = sorted(e["ts"] for e in events if e.get("name") == "model_run")[1]
    total: collections.Counter[str] = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= first_timed:
            total[e["args"]["op_name"]] += e["dur"]
    return {op: us / rounds / 1e3 for op, us in total.most_common()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, nargs="+")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    if args.profile:
        for model in args.model:
            ops = profile(model, args.rounds)
            print(f"{model}: kernel time {sum(ops.values()):.1f} ms/run: "
                  + ", ".join(f"{op} {ms:.1f}" for op, ms in ops.items()))
        return 0
    args.model = args.model[0]
    accurate = int8_8bit_weights(args.model) and x86_without_vnni()
    sessions = {k: ort.InferenceSession(str(args.model), o, providers=["CPUExecutionProvider"])
                for k, o in _variants(accurate).items()}
    inp = next(iter(sessions.values())).get_inputs()[0]
    x = np.random.default_rng(0).random(inp.shape, dtype=np.float32)
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for r in range(args.warmup + args.rounds):
        for name, sess in sessions.items():
            t0 = time.perf_counter()
            sess.run(None, {inp.name: x})
            if r >= args.warmup:
                times[name].append((time.perf_counter() - t0) * 1e3)
    ref = statistics.median(next(iter(times.values())))
    print(f"{args.model} ({'int8, exact kernels' if accurate else 'as is'}), {args.rounds} interleaved rounds")
    for name, ts in times.items():
        p50 = statistics.median(ts)
        print(f"{name:<40} p50 {p50:9.2f} ms   x{p50 / ref:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
