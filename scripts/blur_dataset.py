#!/usr/bin/env python
"""Write a blurred copy of an evaluation set for the x1 deblurring row, as ``image_SRF_1`` pairs.

    python scripts/blur_dataset.py SRC --out DIR [--seed 0]

SRC: any ``find_pairs`` layout (its HR images are used, e.g. ``../shared/data/images/Set5``).
Writes ``DIR/image_SRF_1/<name>_HR.png`` (the sharp image) and ``<name>_LR.png`` (blurred with the
training kernel family of ``degradation.degrade_blur``: Gaussian or motion blur, image i seeded
with ``[seed, i]``), so ``vacc-deploy eval edsr_x1_deblur --dataset DIR`` scores deblurring and
``scripts/bicubic_baseline.py edsr_x1_deblur --dataset DIR`` scores the blurred input itself.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vacc_deploy.degradation import degrade_blur  # noqa: E402
from vacc_deploy.errors import VaccError  # noqa: E402
from vacc_deploy.imaging.datasets import find_pairs  # noqa: E402
from vacc_deploy.imaging.io import read_image, to_uint, write_image  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        folder = args.out / "image_SRF_1"
        pairs = find_pairs(args.src, 2)
        for i, pair in enumerate(pairs):
            hr = to_uint(read_image(pair.hr_path).rgb, 8, "round").astype(np.float32) / 255.0
            blurred, sharp = degrade_blur(hr, np.random.default_rng([args.seed, i]))
            write_image(folder / f"{pair.name}_HR.png", to_uint(sharp, 8, "round"))
            write_image(folder / f"{pair.name}_LR.png", to_uint(blurred, 8, "round"))
    except VaccError as exc:
        sys.stderr.write(f"blur_dataset.py: error: {exc}\n")
        return exc.exit_code
    print(f"wrote {len(pairs)} blurred/sharp pairs to {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
