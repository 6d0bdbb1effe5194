"""Every row through `vacc-deploy build ROW --backend vacc --precision int8 --quant percentile` and
`--precision fp16` with the stand-in vamc (tests/backends/standins) on PATH: the stand-in validates
each YAML as the real compiler would receive it. Prints one line per row and build.

Usage: python scripts/check_vacc_builds.py [--shape 1x3x64x64] [--weights synthetic] [--workdir DIR]
           [--calib-images DIR] [--rows a,b]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import dataclasses

import yaml

from vacc_deploy.config import available_rows
from vacc_deploy.pipeline import CalibRequest, ModelRequest, build

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="1x3x64x64")
    ap.add_argument("--weights", default="synthetic")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--calib-images", type=Path, default=SHARED / "images" / "RealSRSet")
    ap.add_argument("--rows", default=None)
    args = ap.parse_args()
    from vacc_deploy.backends import BuildOptions
    from vacc_deploy.config import load_row, parse_shape

    os.environ["PATH"] = os.pathsep.join([str(REPO / "tests" / "backends" / "standins"),
                                          str(Path(sys.executable).parent), os.environ["PATH"]])
    failed = 0
    for row in (args.rows.split(",") if args.rows else available_rows()):
        config = load_row(row)
        for precision in ("int8", "fp16"):
            req = ModelRequest(weights=args.weights, shape=parse_shape(args.shape),
                               build=BuildOptions(precision=precision, quant="percentile"),
                               calib=CalibRequest(images=args.calib_images, num=8))
            try:
                vb = build(config, dataclasses.replace(req, backend="vacc"), args.workdir).vamc
            except Exception as exc:  # report and go on: this is a check over every row
                failed += 1
                print(f"{row:<17} {precision:<5} FAILED: {exc}", flush=True)
                continue
            doc = yaml.safe_load(vb.yaml_path.read_text())
            q = doc["backend"].get("quantize")
            files = sorted(p.name for p in vb.deploy_dir.iterdir())
            print(f"{row:<17} {precision:<5} accepted; quantize={'yes' if q else 'no'} dataset="
                  f"{'yes' if 'dataset' in doc else 'no'} skip_conv_layers={q.get('skip_conv_layers') if q else '-'} "
                  f"deploy={files}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
