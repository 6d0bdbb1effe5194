"""List the model rows: architecture, scale, conventions, input shape, and the weights this machine
would use by default (official checkpoint found here or downloaded, else house, else synthetic)."""

from __future__ import annotations

import argparse
import json

from vacc_deploy.config import available_rows, load_row
from vacc_deploy.types import DEFAULT_WEIGHT_ROUNDING


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def describe(row: str) -> dict:
    """One row's summary (imports the model families, hence torch)."""
    from vacc_deploy.models import row_spec
    from vacc_deploy.weights import default_choice

    config = load_row(row)
    spec = row_spec(config)
    official = config.weights.official
    return {
        "row": config.name, "arch": config.arch, "scale": spec.scale,
        "input_shape": list(config.input_shape), "channel_order": spec.channel_order,
        "value_range": spec.value_range, "size_multiple": spec.size_multiple,
        "output_conversion": spec.output_conversion, "seed_quant": config.quant.method,
        "equalize": config.quant.equalize, "weight_rounding": config.quant.weight_rounding,
        "official_weights": official.file if official else None,
        "house_weights": config.weights.house.file if config.weights.house else None,
        "weights_here": default_choice(config), "description": config.description,
    }


def _rewrites(r: dict) -> str:
    """The row's int8 fp32 rewrites, e.g. ``equalize+gptq`` (``-``: none)."""
    parts = (["equalize"] if r["equalize"] else []) + (
        [r["weight_rounding"]] if r["weight_rounding"] != DEFAULT_WEIGHT_ROUNDING else [])
    return "+".join(parts) or "-"


def run(args: argparse.Namespace) -> int:
    rows = [describe(r) for r in available_rows()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    w = max(len("row"), *(len(r["row"]) for r in rows))
    head = (f"{'row':<{w}} {'arch':<13} {'x':>2} {'input':<15} {'order':<5} {'range':>5} {'quant':<14} {'rewrites':<13} "
            f"{'official checkpoint':<44} weights used here")
    print(head)
    print("-" * (len(head) + 14))
    for r in rows:
        shape = "x".join(map(str, r["input_shape"]))
        print(f"{r['row']:<{w}} {r['arch']:<13} {r['scale']:>2} {shape:<15} {r['channel_order']:<5} "
              f"{r['value_range']:>5g} {r['seed_quant']:<14} {_rewrites(r):<13} {r['official_weights'] or '(none public)':<44} "
              f"{r['weights_here']}")
    print("quant, rewrites: the row's int8 calibration method, and its equalization / weight rounding "
          "(onnxruntime numerics), when none is named")
    print("weights used here: what a command uses without --weights (official checkpoint found here or "
          "downloaded, else the row's house weights, else synthetic); docs/house_weights.md")
    return 0
