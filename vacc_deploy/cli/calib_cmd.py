"""Make a calibration set with the row's own pre-processing (seeded, hashed, cached)."""

from __future__ import annotations

import argparse

from vacc_deploy.cli.common import (
    add_calib_args, add_force, add_row, add_shape, add_weights, add_workdir, request_from_args,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_row(parser)
    add_calib_args(parser, images_flag="--images")
    add_shape(parser)
    add_weights(parser)
    add_workdir(parser)
    add_force(parser, "make the set")


def run(args: argparse.Namespace) -> int:
    from vacc_deploy.config import load_row
    from vacc_deploy.errors import UsageError
    from vacc_deploy.pipeline import prepare

    if args.calib_images is None:
        raise UsageError("calib: --images DIR is required")
    config = load_row(args.row)
    calib = prepare(config, request_from_args(args), args.workdir, int8=True, force_calib=args.force).calib
    assert calib is not None
    m = calib.manifest
    print(f"{config.name}: {calib.num} samples ({m['mode']}, {'x'.join(map(str, m['shape']))}, seed {m['seed']}, "
          f"degrade {m['degrade']}) from {len(m['sources'])} images; {m['n_skipped']} unreadable or too small skipped")
    print(f"  folder  {calib.folder}")
    print(f"  sha256  {calib.sha256}")
    return 0
