"""Build a row for a precision: fp32/fp16, or int8 QDQ from a streamed calibration (ONNX Runtime)."""

from __future__ import annotations

import argparse

from vacc_deploy.cli.common import add_model_args, add_row, request_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_row(parser)
    add_model_args(parser, backends=("onnxruntime",))


def run(args: argparse.Namespace) -> int:
    from vacc_deploy.config import load_row
    from vacc_deploy.pipeline import build_onnx

    config = load_row(args.row)
    exported, built = build_onnx(config, request_from_args(args), args.workdir)
    state = "reused (inputs unchanged)" if built.cached else "built"
    print(f"{config.name} {built.precision}{' ' + built.quant if built.quant else ''}: {state}")
    print(f"  model    {built.model_path}")
    m = built.manifest
    if "calibration" in m:
        c = m["calibration"]
        print(f"  calib    {c['images']} samples, {c['method']} {c.get('params') or ''} "
              f"({c['n_skipped_images']} unreadable images skipped)")
        print(f"  float    {', '.join(m['float_layers']) or 'none'}")
        print(f"  weights  {'per-channel' if m['settings']['per_channel'] else 'per-tensor'}, "
              f"{'7-bit (reduce_range)' if m['settings']['reduce_range'] else '8-bit'}")
    if m.get("timings"):
        print("  timings  " + ", ".join(f"{k} {v:.1f}s" for k, v in m["timings"].items()))
    return 0
