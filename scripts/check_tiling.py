"""Tiled equals untiled: per-image PSNR (standard protocol) of the tiled fixed-shape ONNX model on
ONNX Runtime vs the whole-image PyTorch model, for every image of a dataset.

Usage: python scripts/check_tiling.py [ROW] [--dataset DIR] [--weights W] [--workdir DIR]
Exits 1 when any image differs by 0.01 dB or more.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vacc_deploy.config import load_row
from vacc_deploy.evaluation.protocols import Candidate, evaluate
from vacc_deploy.imaging.datasets import find_pairs
from vacc_deploy.pipeline import ModelRequest, upscaler_for

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("row", nargs="?", default="lesrcnn_x2")
    ap.add_argument("--dataset", type=Path, default=SHARED / "images" / "Set14")
    ap.add_argument("--weights", default=None, help="default: the official file in ../shared/data/weights")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    config = load_row(args.row)
    weights = args.weights or str(SHARED / "weights" / config.weights.official.file)
    cands = []
    for backend in ("onnxruntime", "torch"):
        up, built = upscaler_for(config, ModelRequest(weights=weights, backend=backend), args.workdir)
        cands.append(Candidate("fp32", None, backend, up, built.input_shape[2:]))
    pairs = find_pairs(args.dataset, cands[0].upscaler.spec.scale)
    res = evaluate(pairs, cands, row=config.name, dataset=args.dataset, scale=cands[0].upscaler.spec.scale)
    by_image: dict[str, dict[str, float]] = {}
    for r in res["per_image"]:
        by_image.setdefault(r["image"], {})[r["backend"]] = r["psnr"]
    worst = 0.0
    print(f"{'image':<10} {'tiled ONNX':>11} {'whole torch':>12} {'diff dB':>9}")
    for name, v in by_image.items():
        diff = v["onnxruntime"] - v["torch"]
        worst = max(worst, abs(diff))
        print(f"{name:<10} {v['onnxruntime']:>11.4f} {v['torch']:>12.4f} {diff:>+9.4f}")
    print(f"largest |difference|: {worst:.4f} dB over {len(by_image)} images")
    return 0 if worst < 0.01 else 1


if __name__ == "__main__":
    sys.exit(main())
