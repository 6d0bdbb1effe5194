"""Upscale an image or a folder of images with a row's model and its exact pre/post-processing."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from vacc_deploy.cli.common import add_model_args, add_row, upscaler_from_args
from vacc_deploy.config import load_row
from vacc_deploy.errors import VaccError
from vacc_deploy.imaging.datasets import images_at
from vacc_deploy.progress import progress_bar


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_row(parser)
    parser.add_argument("--input", type=Path, required=True, metavar="PATH", help="an image file or a folder")
    parser.add_argument("--output", type=Path, required=True, metavar="DIR", help="output folder (same file names)")
    parser.add_argument("--rounding", choices=("official", "round"), default="official",
                        help="float→integer conversion: the row's official one (default) or rounding")
    add_model_args(parser)


def run(args: argparse.Namespace) -> int:
    from vacc_deploy.imaging.io import read_image, write_image
    from vacc_deploy.evaluation.upscaler import upscale_image

    config = load_row(args.row)
    files = images_at(args.input, "input")
    upscaler, built = upscaler_from_args(config, args)
    print(f"{config.name}: {args.backend}, weights {built.label}", file=sys.stderr)
    failures: list[str] = []
    for path in progress_bar(files, desc=f"run {config.name}", unit="img"):
        try:
            image = read_image(path)
            rgb, alpha = upscale_image(image, upscaler, args.rounding)
            write_image(args.output / path.name, rgb, alpha, gray=image.was_gray)
        except VaccError as exc:
            failures.append(str(exc))
            tqdm.write(f"vacc-deploy: error: {exc}", file=sys.stderr)
    print(f"{len(files) - len(failures)} of {len(files)} images written to {args.output}")
    if failures:
        print(f"vacc-deploy: {len(failures)} failed:", file=sys.stderr)
        for line in failures:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0
