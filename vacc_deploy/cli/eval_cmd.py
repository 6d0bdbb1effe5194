"""Evaluate a row on a dataset: PSNR/SSIM (standard or vendor protocol) and fidelity to fp32."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vacc_deploy.cli.common import (
    add_model_args, add_row, overlap_of, request_from_args, session_options, split_list,
)
from vacc_deploy.config import RowConfig, load_row
from vacc_deploy.types import DEFAULT_PROTOCOL, PROTOCOLS, ROUNDINGS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_row(parser)
    parser.add_argument("--dataset", type=Path, required=True, metavar="DIR",
                        help="image_SRF_<s>/ pairs, DIV2K-style HR/ + LR_bicubic/X<s>/, or HR images only")
    parser.add_argument("--protocol", choices=PROTOCOLS, default=DEFAULT_PROTOCOL)
    parser.add_argument("--rounding", choices=ROUNDINGS, default="official",
                        help="output conversion in the standard protocol (default: the row's official one)")
    parser.add_argument("--vendor-resize", choices=("area", "bilinear"), default="area",
                        help="vendor protocol: how the LR image is resized to the model input")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="write results as JSON")
    add_model_args(parser, multi=True)


def print_table(result: dict) -> None:
    print(f"{result['row']} on {result['dataset']} ({result['protocol']} protocol, {result['n_images']} images)")
    head = f"{'precision':<22} {'quant':<14} {'backend':<12} {'PSNR':>8} {'SSIM':>7} {'dPSNR':>7} {'dSSIM':>8} {'fid.PSNR':>9}"
    print(head)
    print("-" * len(head))
    for r in result["results"]:
        print(f"{r.get('label') or r['precision']:<22} {r['quant'] or '-':<14} {r['backend']:<12} {r['psnr']:>8.3f} "
              f"{r['ssim']:>7.4f} {r['delta_psnr']:>+7.3f} {r['delta_ssim']:>+8.4f} {r['fidelity_psnr']:>9.2f}")


def candidates(config: RowConfig, args: argparse.Namespace) -> tuple[list, str]:
    """Build (or reuse) every requested model and wrap each in a :class:`Candidate`; also the
    weights' label."""
    from vacc_deploy.evaluation.protocols import Candidate
    from vacc_deploy.pipeline import prepare, upscaler_for, variants

    base = request_from_args(args)
    numerics = split_list(args.numerics) or (base.build.numerics,)
    wanted = variants(config, split_list(args.precisions), split_list(args.quant))
    up = prepare(config, base, args.workdir, int8=any(p == "int8" for p, _ in wanted))
    out, seen = [], set()
    for precision, method in wanted:
        for num in numerics if precision == "int8" else (None,):
            upscaler, built = upscaler_for(config, base.with_precision(precision, method, num), args.workdir,
                                           overlap=overlap_of(args), options=session_options(args), up=up)
            key = (built.precision, built.folder, built.onnx_path, built.vacc_dir)
            if key in seen:  # a target search chose the same build for two asked methods
                continue
            seen.add(key)
            out.append(Candidate(precision, built.quant, args.backend, upscaler, built.input_shape[2:], built.numerics))
    return out, up.weights.label


def run(args: argparse.Namespace) -> int:
    from vacc_deploy import artifacts
    from vacc_deploy.evaluation.protocols import evaluate
    from vacc_deploy.imaging.datasets import find_pairs

    config = load_row(args.row)
    cands, label = candidates(config, args)
    scale = cands[0].upscaler.spec.scale
    pairs = find_pairs(args.dataset, scale)
    result = evaluate(pairs, cands, row=config.name, dataset=args.dataset, scale=scale,
                      protocol=args.protocol, rounding=args.rounding, vendor_interp=args.vendor_resize)
    result["weights"] = label
    print_table(result)
    if args.json:
        artifacts.atomic_write_json(args.json, result)
        print(f"results written to {args.json}")
    return report_failed(result["failed"], result["n_images"])


def report_failed(failed: list[dict], scored: int) -> int:
    """Print each image left out (one line each) and a summary on stderr; the exit code (1 if any)."""
    for f in failed:
        print(f"vacc-deploy: error: {f['error']}", file=sys.stderr)
    if failed:
        print(f"vacc-deploy: {len(failed)} of {len(failed) + scored} images could not be evaluated "
              f"(left out of the means)", file=sys.stderr)
    return 1 if failed else 0
