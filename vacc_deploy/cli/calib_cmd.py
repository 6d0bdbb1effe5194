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
    from vacc_deploy.pipeline import calib_stage, export_stage
    from vacc_deploy.spec import ModelSpec

    if args.calib_images is None:
        raise UsageError("calib: --images DIR is required")
    args.skip_layers, args.percentile, args.reduce_range, args.per_channel = "", 99.99, "off", True
    args.float_edges = True
    config = load_row(args.row)
    req = request_from_args(args)
    exported = export_stage(config, req, args.workdir)
    calib = calib_stage(config, ModelSpec(**exported.spec), exported.input_shape, req, args.workdir, force=args.force)
    m = calib.manifest
    print(f"{config.name}: {calib.num} samples ({m['mode']}, {'x'.join(map(str, m['shape']))}, seed {m['seed']}, "
          f"degrade {m['degrade']}) from {len(m['sources'])} images; {m['n_skipped']} unreadable or too small skipped")
    print(f"  folder  {calib.folder}")
    print(f"  sha256  {calib.sha256}")
    return 0
