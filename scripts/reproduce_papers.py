"""Reproduce the papers' fp32 numbers: standard protocol (tiled fixed-shape ONNX on ONNX Runtime),
official weights, Set5 and Set14, against the published PSNR/SSIM (Y channel).

Usage: python scripts/reproduce_papers.py [--shared ../shared] [--workdir DIR] [--json FILE]
Prints a Markdown table; exits 1 when a row is outside 0.02 dB / 0.0005 of the paper.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vacc_deploy.config import available_rows, load_row
from vacc_deploy.evaluation.protocols import Candidate, evaluate
from vacc_deploy.imaging.datasets import find_pairs
from vacc_deploy.pipeline import ModelRequest, upscaler_for

#: (row, dataset): (PSNR, SSIM) as published: each row YAML's ``paper``
PAPER = {(row, ds): tuple(v) for row in available_rows() for ds, v in load_row(row).paper.items()}
TOL_PSNR, TOL_SSIM = 0.02, 0.0005


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--rows", default=None, help="comma-separated subset of rows")
    args = ap.parse_args()
    data = args.shared / "data"
    rows = args.rows.split(",") if args.rows else sorted({r for r, _ in PAPER})
    print("| row | dataset | PSNR | SSIM | paper PSNR | paper SSIM | dPSNR | dSSIM | ok |")
    print("|---|---|---|---|---|---|---|---|---|")
    out, bad = [], 0
    for row in rows:
        config = load_row(row)
        req = ModelRequest(weights=str(data / "weights" / config.weights.official.file))
        up, built = upscaler_for(config, req, args.workdir)
        for ds in ("Set5", "Set14"):
            pairs = find_pairs(data / "images" / ds, up.spec.scale)
            cand = Candidate("fp32", None, "onnxruntime", up, built.input_shape[2:])
            res = evaluate(pairs, [cand], row=row, dataset=data / "images" / ds, scale=up.spec.scale,
                           progress=False)["results"][0]
            p, s = PAPER[(row, ds)]
            ok = abs(res["psnr"] - p) <= TOL_PSNR and abs(res["ssim"] - s) <= TOL_SSIM
            bad += not ok
            out.append({"row": row, "dataset": ds, **res, "paper_psnr": p, "paper_ssim": s, "ok": ok})
            print(f"| {row} | {ds} | {res['psnr']:.3f} | {res['ssim']:.4f} | {p:.2f} | {s:.4f} | "
                  f"{res['psnr'] - p:+.3f} | {res['ssim'] - s:+.4f} | {'yes' if ok else 'NO'} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
