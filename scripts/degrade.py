#!/usr/bin/env python
"""Write N BSRGAN-degraded LQ samples of one image, its HQ crop and a labelled comparison grid.

    python scripts/degrade.py IMAGE --out DIR [--sf 4] [--n 12] [--seed 0]

Outputs in DIR: ``hq.png`` (mod-cropped HQ), ``lq_000.png`` ... (sample i uses the generator
``np.random.default_rng([seed, i])``) and ``grid.png`` (each LQ nearest-upscaled to HQ size and
labelled). Every file is written to a temporary name and renamed. Exit codes: 0 ok, 2 bad
arguments, 1 failure (e.g. unreadable image).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vacc_deploy.degradation import degrade_bsrgan, mod_crop  # noqa: E402
from vacc_deploy.errors import ImageError, VaccError  # noqa: E402


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        sys.stderr.write(f"degrade.py: error: {message}\n")
        raise SystemExit(2)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _seed(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = _Parser(description=__doc__.splitlines()[0])
    p.add_argument("image", type=Path, help="input image (any format OpenCV reads)")
    p.add_argument("--out", type=Path, required=True, help="output folder (created)")
    p.add_argument("--sf", type=int, default=4, choices=[1, 2, 3, 4], help="scale factor")
    p.add_argument("--n", type=_positive, default=12, help="number of LQ samples")
    p.add_argument("--seed", type=_seed, default=0, help="base seed")
    return p.parse_args(argv)


def read_rgb(path: Path) -> np.ndarray:
    """Read an image as float32 RGB (H, W, 3) in [0, 1]; raise ImageError if it cannot be read."""
    data = np.fromfile(path, np.uint8) if path.is_file() else None
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data is not None and data.size else None
    if img is None:
        raise ImageError(f"cannot read image: {path}")
    return img[..., ::-1].astype(np.float32) / 255.0


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Atomically write a float RGB [0, 1] or uint8 RGB image as PNG."""
    if rgb.dtype != np.uint8:
        rgb = (np.clip(rgb, 0, 1) * 255.0).round().astype(np.uint8)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise VaccError(f"cannot encode {path}")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(buf.tobytes())
    os.replace(tmp, path)


def make_grid(tiles: list[np.ndarray], labels: list[str], cols: int, pad: int = 4) -> np.ndarray:
    """Tile equally sized uint8 RGB images (h, w, 3) into rows of ``cols`` with white padding."""
    h, w = tiles[0].shape[:2]
    rows = math.ceil(len(tiles) / cols)
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    scale = max(0.4, min(h, w) / 400.0)
    for i, (tile, label) in enumerate(zip(tiles, labels)):
        t = tile.copy()
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        cv2.rectangle(t, (0, 0), (tw + 6, th + 8), (0, 0, 0), -1)
        cv2.putText(t, label, (3, th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 0), 1,
                    cv2.LINE_AA)
        y, x = pad + (i // cols) * (h + pad), pad + (i % cols) * (w + pad)
        grid[y: y + h, x: x + w] = t
    return grid


def run(args: argparse.Namespace) -> None:
    """Degrade ``args.image`` ``args.n`` times and write the samples, the HQ and the grid."""
    img = mod_crop(read_rgb(args.image), args.sf)
    args.out.mkdir(parents=True, exist_ok=True)
    write_png(args.out / "hq.png", img)
    tiles, labels = [], []
    for i in range(args.n):
        trace: list[str] = []
        lq, hq = degrade_bsrgan(img, args.sf, np.random.default_rng([args.seed, i]), trace=trace)
        print(f"#{i}: {' > '.join(trace)} > final jpeg")
        write_png(args.out / f"lq_{i:03d}.png", lq)
        up = cv2.resize(lq, (hq.shape[1], hq.shape[0]), interpolation=cv2.INTER_NEAREST)
        tiles.append((np.clip(up, 0, 1) * 255).round().astype(np.uint8))
        labels.append(f"seed {args.seed} #{i} x{args.sf}")
    tiles.append((img * 255).round().astype(np.uint8))
    labels.append("HQ")
    write_png(args.out / "grid.png", make_grid(tiles, labels, cols=min(len(tiles), 5)))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except VaccError as exc:
        sys.stderr.write(f"degrade.py: error: {exc}\n")
        return exc.exit_code
    except OSError as exc:
        sys.stderr.write(f"degrade.py: error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
