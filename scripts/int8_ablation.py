"""What each int8 choice is worth: standard-protocol PSNR drop vs fp32 on a dataset for variants of
the int8 build (7-bit vs 8-bit weights, edge convs in float or int8, KL with ONNX Runtime's rule vs
ours), all calibrated on the same RealSRSet crops.

Usage: python scripts/int8_ablation.py [ROW] [--dataset DIR] [--num 50] [--workdir DIR]
Prints a Markdown table (variant, PSNR, dPSNR, fidelity PSNR).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vacc_deploy.backends import BuiltModel, open_session
from vacc_deploy.backends import BuildOptions
from vacc_deploy.backends.ort.build import build_onnxruntime
from vacc_deploy.config import load_row
from vacc_deploy.evaluation.protocols import Candidate, evaluate
from vacc_deploy.imaging.datasets import find_pairs
from vacc_deploy.evaluation.upscaler import Upscaler
from vacc_deploy import artifacts
from vacc_deploy.calibration.methods import KLCalibration, MethodSettings
from vacc_deploy.calibration.ranges import calibration_ranges
from vacc_deploy.pipeline import CalibRequest, ModelRequest, prepare



class _OrtKL(KLCalibration):
    """Our kl_divergence with ONNX Runtime's exact rule (the bin holding zero kept in the search)."""

    @classmethod
    def configured(cls, settings: MethodSettings) -> KLCalibration:
        return KLCalibration(num_quantized_bins=settings.num_quantized_bins, ort_compat=True)


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
VARIANTS = [  # (label, build options, KL with ORT's rule)
    ("percentile, 7-bit weights, all int8", BuildOptions("int8", "percentile", reduce_range="on", float_edges=False), False),
    ("percentile, 8-bit weights, all int8", BuildOptions("int8", "percentile", float_edges=False), False),
    ("percentile, 8-bit weights, edges float (default)", BuildOptions("int8", "percentile"), False),
    ("max, 8-bit weights, edges float", BuildOptions("int8", "max"), False),
    ("mse, 8-bit weights, edges float", BuildOptions("int8", "mse"), False),
    ("kl_divergence (ORT's rule), 8-bit, all int8", BuildOptions("int8", "kl_divergence", float_edges=False), True),
    ("kl_divergence (ours), 8-bit, all int8", BuildOptions("int8", "kl_divergence", float_edges=False), False),
    ("kl_divergence (ours), 8-bit, edges float (default)", BuildOptions("int8", "kl_divergence"), False),
]


def _candidate(label, path, spec, shape, precision="int8"):
    bm = BuiltModel(row="", spec=spec, input_shape=shape, precision=precision, onnx_path=path)
    return Candidate(precision, label, "onnxruntime", Upscaler(open_session("onnxruntime", bm), spec), shape[2:])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("row", nargs="?", default="lesrcnn_x2")
    ap.add_argument("--dataset", type=Path, default=SHARED / "images" / "Set5")
    ap.add_argument("--num", type=int, default=50)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    config = load_row(args.row)
    req = ModelRequest(weights=str(SHARED / "weights" / config.weights.official.file),
                       calib=CalibRequest(images=SHARED / "images" / "RealSRSet", num=args.num))
    up = prepare(config, req, args.workdir, int8=True)
    exported, calib = up.exported, up.calib
    spec, shape = exported.spec, tuple(exported.input_shape)
    cands = [_candidate(None, exported.onnx_path, spec, shape, "fp32")]
    for label, opts, ort_rule in VARIANTS:
        row_name = config.name + ("-ortkl" if ort_rule else "")  # separate range cache for ORT's KL rule
        if ort_rule:
            import vacc_deploy.calibration.methods as methods

            methods.METHODS["kl_divergence"] = _OrtKL
        ranges = calibration_ranges(exported.onnx_path, calib, spec, opts.quant, opts.percentile,
                                    artifacts.row_workdir(row_name, args.workdir))
        built = build_onnxruntime(exported.onnx_path, opts, row=row_name, ranges=ranges, workdir=args.workdir)
        if ort_rule:
            methods.METHODS["kl_divergence"] = methods.KLCalibration
        cands.append(_candidate(label, built.model_path, spec, shape))
    res = evaluate(find_pairs(args.dataset, spec.scale), cands, row=config.name, dataset=args.dataset,
                   scale=spec.scale)["results"]
    print(f"{config.name} on {args.dataset.name}, int8 calibrated on {calib.num} RealSRSet crops\n")
    print("| variant | PSNR | dPSNR vs fp32 | fidelity PSNR |\n|---|---|---|---|")
    for r in res:
        fid = r["fidelity_psnr"]
        print(f"| {r['quant'] or 'fp32'} | {r['psnr']:.3f} | {r['delta_psnr']:+.3f} | "
              f"{fid if isinstance(fid, str) else f'{fid:.2f}'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
