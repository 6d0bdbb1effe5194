"""The int8-on-VACC table of docs/accuracy.md for one row, in one pass per dataset: fp32 and three
int8 builds scored together (standard protocol; dPSNR against fp32):

* ``ort``: ONNX Runtime's default int8 (``--quant percentile``, edge convs float);
* ``seed``: the vacc emulation with the seed's settings (``--numerics vacc --quant percentile
  --int8-edges``: per-channel, weight_scale power2, no conv float);
* ``target``: the vacc emulation after ``--target-drop 0.1 --max-float-layers 4`` (from
  ``--int8-edges``), the same search ``vacc-deploy build ROW --backend vacc ...`` runs (cached).

Usage (from the repository root; the builds are cached in --workdir):

    python scripts/vacc_table.py ROW --weights FILE [--num N] [--shape 1x3xHxW] [--datasets Set5,Set14]

Equivalent to three ``vacc-deploy eval`` runs per dataset with those flags (fp32 is scored once).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> int:
    from vacc_deploy.backends.ort.options import BuildOptions
    from vacc_deploy.config import load_row, parse_shape
    from vacc_deploy.evaluation.protocols import Candidate, evaluate
    from vacc_deploy.imaging.datasets import find_pairs
    from vacc_deploy.pipeline import CalibRequest, ModelRequest, prepare, resolved, upscaler_for

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("row")
    ap.add_argument("--weights", required=True)
    ap.add_argument("--num", type=int, default=50)
    ap.add_argument("--shape", default=None)
    ap.add_argument("--datasets", default="Set5,Set14")
    ap.add_argument("--workdir", type=Path, default=Path("work"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    config = load_row(args.row)
    calib = CalibRequest(images=SHARED / "images" / "RealSRSet", num=args.num)
    base = ModelRequest(weights=args.weights, shape=parse_shape(args.shape) if args.shape else None, calib=calib)
    int8 = BuildOptions(precision="int8", quant="percentile")
    builds = {
        "fp32": BuildOptions(),
        "ort": int8,
        "seed": dataclasses.replace(int8, numerics="vacc", float_edges=False),
        "target": dataclasses.replace(int8, quant=None, numerics="vacc", float_edges=False, target_drop=0.1,
                                      max_float_layers=4),
    }
    cands, chosen = [], {}
    stages = prepare(config, dataclasses.replace(base, build=int8), args.workdir)
    for name, opts in builds.items():
        req = resolved(stages, dataclasses.replace(base, build=opts))
        if opts.target_drop is not None:
            chosen = {"quant": req.build.quant, "per_channel": req.build.per_channel,
                      "weight_scale": req.build.weight_scale, "skip_layers": list(req.build.skip_layers)}
        up, built = upscaler_for(config, req, args.workdir, up=stages)
        cands.append(Candidate(f"{name}", built.quant, "onnxruntime", up, built.input_shape[2:],
                               built.numerics))
    out = {"row": args.row, "target_choice": chosen, "datasets": {}}
    for ds in args.datasets.split(","):
        folder = SHARED / "images" / ds
        res = evaluate(find_pairs(folder, cands[0].upscaler.spec.scale), cands, row=args.row, dataset=folder,
                       scale=cands[0].upscaler.spec.scale, progress=False)
        out["datasets"][ds] = {name: {k: r[k] for k in ("psnr", "ssim", "delta_psnr", "delta_ssim", "fidelity_psnr")}
                               for name, r in zip(builds, res["results"])}
        line = " | ".join(f"{name} {r['delta_psnr']:+.3f}" for name, r in out["datasets"][ds].items() if name != "fp32")
        print(f"{args.row} {ds}: fp32 {out['datasets'][ds]['fp32']['psnr']:.3f} dB | {line}", flush=True)
    print(f"target choice: {chosen}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
