"""Evaluate a row on a dataset: PSNR/SSIM (standard or vendor protocol) and fidelity to fp32."""

from __future__ import annotations

import argparse
from pathlib import Path

from vacc_deploy.cli.common import add_model_args, add_row, upscaler_from_args
from vacc_deploy.config import load_row


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_row(parser)
    parser.add_argument("--dataset", type=Path, required=True, metavar="DIR",
                        help="image_SRF_<s>/ pairs, DIV2K-style HR/ + LR_bicubic/X<s>/, or HR images only")
    parser.add_argument("--protocol", choices=("standard", "vendor"), default="standard")
    parser.add_argument("--rounding", choices=("official", "round"), default="official",
                        help="output conversion in the standard protocol (default: the row's official one)")
    parser.add_argument("--vendor-resize", choices=("area", "bilinear"), default="area",
                        help="vendor protocol: how the LR image is resized to the model input")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="write results as JSON")
    add_model_args(parser)


def print_table(result: dict) -> None:
    print(f"{result['row']} on {result['dataset']} ({result['protocol']} protocol, {result['n_images']} images)")
    head = f"{'precision':<9} {'quant':<14} {'backend':<12} {'PSNR':>8} {'SSIM':>7} {'dPSNR':>7} {'dSSIM':>8} {'fid.PSNR':>9}"
    print(head)
    print("-" * len(head))
    for r in result["results"]:
        print(f"{r['precision']:<9} {r['quant'] or '-':<14} {r['backend']:<12} {r['psnr']:>8.3f} "
              f"{r['ssim']:>7.4f} {r['delta_psnr']:>+7.3f} {r['delta_ssim']:>+8.4f} {r['fidelity_psnr']:>9.2f}")


def run(args: argparse.Namespace) -> int:
    from vacc_deploy import artifacts
    from vacc_deploy.evaluate import Candidate, evaluate
    from vacc_deploy.imaging.datasets import find_pairs

    config = load_row(args.row)
    upscaler, built = upscaler_from_args(config, args)
    pairs = find_pairs(args.dataset, upscaler.spec.scale)
    cand = Candidate("fp32", None, args.backend, upscaler, built.input_shape[2:])
    result = evaluate(pairs, [cand], row=config.name, dataset=args.dataset, scale=upscaler.spec.scale,
                      protocol=args.protocol, rounding=args.rounding, vendor_interp=args.vendor_resize)
    result["weights"] = built.label
    print_table(result)
    if args.json:
        artifacts.atomic_write_json(args.json, result)
        print(f"results written to {args.json}")
    return 0
