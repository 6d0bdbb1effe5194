"""Export every row at its default fixed shape and print a table of export time, model size and
ONNX-vs-PyTorch parity (the acceptance table of the foundation issue).

Usage: python scripts/export_all.py [--weights synthetic] [--workdir DIR] [--rows a,b,...] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from vacc_deploy.config import available_rows, load_row
from vacc_deploy.errors import VaccError
from vacc_deploy.export import export_row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default="synthetic")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--rows", default=None, help="comma-separated rows (default: all)")
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rows = args.rows.split(",") if args.rows else available_rows()
    print(f"{'row':<17} {'shape':<14} {'time s':>7} {'MB':>8} {'max abs diff':>13} {'rel range':>10} simplified")
    results, failed = [], 0
    for row in rows:
        t0 = time.perf_counter()
        try:
            r = export_row(load_row(row), args.weights, workdir=args.workdir, force=args.force)
        except VaccError as exc:
            failed += 1
            print(f"{row:<17} FAILED: {exc}", flush=True)
            continue
        wall = time.perf_counter() - t0
        results.append({**r.to_dict(), "wall_seconds": wall})
        shape = "x".join(map(str, r.input_shape[2:]))
        print(f"{row:<17} {shape:<14} {wall:>7.1f} {r.size_bytes / 1e6:>8.2f} {r.parity_max_abs:>13.3g} "
              f"{r.parity_rel:>10.2g} {'yes' if r.simplified else 'NO'}{' (cached)' if r.cached else ''}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
