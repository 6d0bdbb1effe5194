#!/usr/bin/env python
"""Turn a training run into house weights, or attach Set5 results to their provenance.

    python scripts/house_weights.py ROW --run DIR --command "python scripts/train.py ..."
    python scripts/house_weights.py ROW --derive-from SOURCE_ROW
    python scripts/house_weights.py --table
    python scripts/house_weights.py ROW --attach-eval EVAL.json --attach-baseline BICUBIC.json

The first form writes ``vacc_deploy/house_weights/ROW.safetensors`` (fp16, official key layout) and
``vacc_deploy/house_weights/ROW.provenance.json`` and prints the ``weights.house`` entry for the row's YAML.
The second maps SOURCE_ROW's house weights to ROW's keys (EDSR-PyTorch → BasicSR EDSR of the same
size: the same function). The third adds ``vacc-deploy eval --json`` output and ``scripts/bicubic_baseline.py --json`` output
to the provenance (``set5``: house vs bicubic); ``--table`` prints those results as markdown. Exit codes: 0 ok, 2 bad arguments, 1 failure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vacc_deploy import artifacts  # noqa: E402
from vacc_deploy.config import HOUSE_DIR, load_row  # noqa: E402
from vacc_deploy.errors import VaccError  # noqa: E402


def attach(row: str, eval_json: Path, baseline_json: Path, command: str) -> dict:
    """Add the Set5 comparison (house fp32 eval vs MATLAB bicubic) to the row's provenance."""
    from vacc_deploy.training.house import provenance_path

    prov_file = provenance_path(HOUSE_DIR / f"{row}.safetensors")
    prov = artifacts.read_json(prov_file)
    ev, base = artifacts.read_json(eval_json), artifacts.read_json(baseline_json)
    fp32 = next(r for r in ev["results"] if r.get("precision") == "fp32")
    house = fp32["psnr"]
    prov["set5"] = {"dataset": ev.get("dataset"), "protocol": ev.get("protocol"), "weights": ev.get("weights"),
                    "house_psnr_y": house, "house_ssim_y": fp32["ssim"], "bicubic_psnr_y": base["psnr_y"],
                    "bicubic_ssim_y": base["ssim_y"], "gain_db": round(float(house) - base["psnr_y"], 3),
                    "baseline": "MATLAB bicubic" if base["scale"] > 1 else "the blurred input itself",
                    "commands": command}
    artifacts.atomic_write_json(prov_file, prov)
    return prov["set5"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("row", nargs="?", help="the row (not needed with --table)")
    p.add_argument("--table", action="store_true", help="print the Set5 table of every house weights file")
    p.add_argument("--run", type=Path, help="training run folder (checkpoint.pt, train_log.json)")
    p.add_argument("--command", default="", help="the exact training command (recorded)")
    p.add_argument("--derive-from", metavar="ROW", help="map this row's house weights to ROW's keys")
    p.add_argument("--attach-eval", type=Path, help="vacc-deploy eval --json output")
    p.add_argument("--attach-baseline", type=Path, help="scripts/bicubic_baseline.py --json output")
    args = p.parse_args(argv)
    if args.table:
        from vacc_deploy.training.house import results_table

        print(results_table())
        return 0
    if args.row is None:
        p.error("give ROW (or --table)")
    try:
        if args.attach_eval and args.attach_baseline:
            print(attach(args.row, args.attach_eval, args.attach_baseline, args.command))
            return 0
        from vacc_deploy.training.house import write_derived, write_house

        if args.derive_from:
            out, digest = write_derived(load_row(args.row), load_row(args.derive_from))
        elif args.run is not None:
            out, digest = write_house(load_row(args.row), args.run, args.command)
        else:
            p.error("give --run DIR, --derive-from ROW, or --attach-eval and --attach-baseline")
    except VaccError as exc:
        sys.stderr.write(f"house_weights.py: error: {exc}\n")
        return exc.exit_code
    print(f"wrote {out}\nYAML (under weights:):\n  house:\n    file: \"{out.name}\"\n    sha256: \"{digest}\"")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
