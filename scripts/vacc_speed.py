"""Latency of ``vacc``-numerics builds as a ratio to the fp32 model, interleaved in one process.

Usage: python scripts/vacc_speed.py FP32.onnx BUILT.onnx... [--rounds N]

Each round times every model once (ONNX Runtime CPU session, the project's session options, one
fixed random input, 3 runs, median) in turn; prints each model's median over rounds as a ratio to
fp32's, with the machine's ``cpu_probe_ms`` yardstick before and after (``benchmark.measure``).
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np

from vacc_deploy.backends.ort.session import OrtSession
from vacc_deploy.benchmark.measure import cpu_probe_ms


def main(argv: list[str]) -> None:
    rounds = int(argv[argv.index("--rounds") + 1]) if "--rounds" in argv else 7
    paths = [Path(a) for a in argv if a.endswith(".onnx")]
    sessions = [OrtSession(p) for p in paths]
    x = np.random.default_rng(0).random(sessions[0].input_shape, dtype=np.float32)
    for s in sessions:
        s.run(x)  # warm-up
    probe = cpu_probe_ms()
    times: list[list[float]] = [[] for _ in sessions]
    for _ in range(rounds):
        for i, s in enumerate(sessions):
            runs = []
            for _ in range(3):
                t0 = time.perf_counter()
                s.run(x)
                runs.append((time.perf_counter() - t0) * 1e3)
            times[i].append(statistics.median(runs))
    med = [statistics.median(t) for t in times]
    print(f"cpu_probe_ms {probe:.1f} before, {cpu_probe_ms():.1f} after; {rounds} rounds")
    for p, m in zip(paths, med):
        print(f"{m:8.1f} ms  {med[0] / m:5.2f}x fp32 speed  {p}")


if __name__ == "__main__":
    main(sys.argv[1:])
