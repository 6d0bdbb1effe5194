#!/usr/bin/env python
"""MATLAB-bicubic upscaling scored like ``vacc-deploy eval`` (standard protocol) for a row's scale.

    python scripts/bicubic_baseline.py ROW --dataset DIR [--json FILE]

Prints per-image and mean Y PSNR / SSIM (border crop = scale, the row's Y rounding): the baseline
that house weights must beat by 0.5 dB. Exit codes: 0 ok, 2 bad arguments, 1 failure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vacc_deploy import artifacts  # noqa: E402
from vacc_deploy.config import load_row  # noqa: E402
from vacc_deploy.errors import VaccError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("row")
    p.add_argument("--dataset", type=Path, required=True)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    try:
        from vacc_deploy.models import row_spec
        from vacc_deploy.training.baseline import bicubic_baseline

        result = {"row": args.row, **bicubic_baseline(args.dataset, row_spec(load_row(args.row)))}
    except VaccError as exc:
        sys.stderr.write(f"bicubic_baseline.py: error: {exc}\n")
        return exc.exit_code
    for r in result["images"]:
        print(f"  {r['image']:<16} {r['psnr_y']:.3f} dB  SSIM {r['ssim_y']:.4f}")
    print(f"{args.row}: MATLAB bicubic x{result['scale']} on {args.dataset}: "
          f"PSNR-Y {result['psnr_y']:.3f} dB, SSIM-Y {result['ssim_y']:.4f}")
    if args.json:
        artifacts.atomic_write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
