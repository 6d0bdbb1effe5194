"""Which layers int8 hurts: per quantized layer, the SQNR and cosine of its output against fp32, with
the layer quantized alone and with errors accumulated through the network (streamed over the
calibration samples)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from vacc_deploy.cli.common import add_model_args, add_row, request_from_args
from vacc_deploy.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_row(parser)
    add_model_args(parser, backends=None)
    parser.set_defaults(precision="int8")
    parser.add_argument("--images", type=int, default=None, metavar="N",
                        help="analyse the first N calibration samples (default: all of them)")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the analysis here")
    parser.add_argument("--plot", type=Path, default=None, metavar="PNG", help="also copy the plot here")


def _num(v: object) -> str:
    return "inf" if v == "inf" else f"{float(v):.2f}"  # type: ignore[arg-type]


def print_table(result: dict, ranked: list[dict]) -> None:
    out = next(r for r in result["layers"] if r["conv_index"] is None)
    print(f"{result['row']} int8 ({result['quant']}), {result['images']} calibration samples; "
          f"float layers: {', '.join(result['float_layers']) or 'none'}")
    print(f"network output: SQNR {_num(out['accumulated_sqnr_db'])} dB, cosine {out['accumulated_cosine']:.6f}")
    head = f"{'rank':>4} {'conv':>4} {'layer':<36} {'alone SQNR':>10} {'cos':>9} {'accum SQNR':>10} {'cos':>9}"
    print(head)
    print("-" * len(head))
    for i, r in enumerate(ranked, 1):
        print(f"{i:>4} {r['conv_index']:>4} {r['layer'][-36:]:<36} {_num(r['alone_sqnr_db']):>10} "
              f"{r['alone_cosine']:>9.6f} {_num(r['accumulated_sqnr_db']):>10} {r['accumulated_cosine']:>9.6f}")


def run(args: argparse.Namespace) -> int:
    from vacc_deploy import artifacts
    from vacc_deploy.config import load_row
    from vacc_deploy.evaluation.analysis import ranked_layers
    from vacc_deploy.pipeline import build_model, prepare
    from vacc_deploy.pipeline.analysis import analysis_stage

    config = load_row(args.row)
    req = request_from_args(args)
    if req.build.precision != "int8":
        raise UsageError("analyze compares an int8 build with fp32: use --precision int8")
    if req.calib.images is None:
        raise UsageError("analyze needs calibration images: pass --calib-images DIR")
    up = prepare(config, req, args.workdir)
    result, path, reused = analysis_stage(up, build_model(up, req), images=args.images)
    print_table(result, ranked_layers(result))
    state = "reused" if reused else f"{result['seconds']:.1f} s"
    print(f"analysis: {path} ({state}); plot: {path.with_suffix('.png')}")
    if args.json:
        artifacts.atomic_write_json(args.json, result)
    if args.plot:
        shutil.copyfile(path.with_suffix(".png"), args.plot)
    return 0
