"""The quantization accuracy table: standard-protocol eval of fp32 / fp16 / int8 (each calibration
method) on Set5 and Set14 with official weights, int8 calibrated on RealSRSet crops (never the
evaluation sets). Prints a Markdown table and writes the eval JSONs.

Usage: python scripts/accuracy_table.py [--rows a,b] [--quant percentile,kl_divergence] [--num 50]
           [--weights official|house] [--datasets DIR,DIR] [--workdir DIR] [--out DIR]
           [extra eval options, e.g. --int8-edges, --shape 1x3x256x256]
--weights house evaluates the project's own trained weights (docs/house_weights.md); --datasets
replaces Set5,Set14 (e.g. blurred copies from scripts/blur_dataset.py for edsr_x1_deblur).
Exit 1 when fp16 loses more than 0.02 dB or the best int8 method more than 0.30 dB on a set.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vacc_deploy.cli import main as cli

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
ROWS = ("lesrcnn_x2", "lesrcnn_x3", "lesrcnn_x4", "bicubic_pp_x3")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--quant", default="percentile,kl_divergence")
    ap.add_argument("--num", default="50")
    ap.add_argument("--weights", choices=("official", "house"), default="official")
    ap.add_argument("--datasets", default=None, help="comma-separated dataset folders (default Set5,Set14)")
    ap.add_argument("--workdir", default="work")
    ap.add_argument("--out", type=Path, default=Path("work/accuracy"))
    args, extra = ap.parse_known_args()
    from vacc_deploy.config import load_row

    lines = ["| row | set | precision | method | PSNR | SSIM | dPSNR | dSSIM | fidelity PSNR |",
             "|---|---|---|---|---|---|---|---|---|"]
    bad = 0
    datasets = ([Path(d) for d in args.datasets.split(",")] if args.datasets
                else [SHARED / "images" / "Set5", SHARED / "images" / "Set14"])
    for row in args.rows.split(","):
        weights = "house" if args.weights == "house" else str(SHARED / "weights" / load_row(row).weights.official.file)
        for folder in datasets:
            ds = folder.name
            out = args.out / f"{row}_{ds}.json"
            rc = cli(["eval", row, "--weights", weights, "--dataset", str(folder),
                      "--precisions", "fp32,fp16,int8", "--quant", args.quant, "--calib-images",
                      str(SHARED / "images" / "RealSRSet"), "--num", args.num, "--workdir", args.workdir,
                      "--json", str(out), *extra])
            if rc:
                return rc
            res = json.loads(out.read_text())["results"]
            for r in res:
                fid = r["fidelity_psnr"]
                fid = fid if isinstance(fid, str) else f"{fid:.2f}"
                lines.append(f"| {row} | {ds} | {r['precision']} | {r['quant'] or '-'} | {r['psnr']:.3f} | "
                             f"{r['ssim']:.4f} | {r['delta_psnr']:+.3f} | {r['delta_ssim']:+.4f} | {fid} |")
            fp16 = [r for r in res if r["precision"] == "fp16"]
            int8 = [r for r in res if r["precision"] == "int8"]
            bad += any(r["delta_psnr"] < -0.02 for r in fp16)
            bad += bool(int8) and max(r["delta_psnr"] for r in int8) < -0.30
    print("\n".join(lines))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
