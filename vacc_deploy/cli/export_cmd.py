"""Export a row to a fixed-shape, simplified, checked ONNX model (parity-checked against PyTorch)."""

from __future__ import annotations

import argparse

from vacc_deploy.cli.common import add_opset, add_row, add_shape, add_weights, add_workdir, row_and_shape


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_row(parser)
    add_weights(parser)
    add_shape(parser)
    add_opset(parser)
    add_workdir(parser)
    parser.add_argument("--force", action="store_true", help="export again even if a cached export matches")


def run(args: argparse.Namespace) -> int:
    from vacc_deploy.export import export_row

    config, shape = row_and_shape(args)
    res = export_row(config, args.weights, shape, args.opset, args.workdir, args.force)
    state = "reused (inputs unchanged)" if res.cached else f"exported in {res.export_seconds:.1f} s"
    print(f"{res.row}: {state}")
    print(f"  model     {res.onnx_path} ({res.size_bytes / 1e6:.2f} MB, opset {res.opset}, "
          f"{'simplified' if res.simplified else 'NOT simplified'})")
    print(f"  weights   {res.weights}")
    print(f"  shape     {'x'.join(map(str, res.input_shape))} -> {'x'.join(map(str, res.output_shape))}")
    print(f"  parity    max |ONNX Runtime - PyTorch| = {res.parity_max_abs:.3g} "
          f"({res.parity_rel:.2g} of the output range; saved in parity.json)")
    for note in res.notes:
        print(f"  warning   {note}")
    return 0
