"""Peak memory and time of calibration: ours (streaming, one image at a time) vs ONNX Runtime's
stock ``quantize_static`` on the same model and calibration samples.

Usage: python scripts/bench_calibration.py ROW --num N [--method percentile] [--weights W]
           [--images DIR] [--shape 1xCxHxW] [--stock-limit-gb 16] [--no-stock] [--workdir DIR]

Each measurement runs in a fresh subprocess; peak RSS is that process's own high-water mark
(``VmHWM``; ``ru_maxrss`` would carry the parent's peak across exec). The stock run gets an address-space limit (``--stock-limit-gb``)
so that running out of memory fails that run instead of the machine; a failure is reported.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _prepare(args: argparse.Namespace) -> tuple[Path, Path, dict]:
    """Export (cached) and make the calibration set in this process, before any measurement."""
    from vacc_deploy.config import load_row, parse_shape
    from vacc_deploy.pipeline import CalibRequest, ModelRequest, calib_stage, export_stage
    from vacc_deploy.spec import ModelSpec

    config = load_row(args.row)
    default_w = SHARED / "weights" / (config.weights.official.file if config.weights.official else "")
    weights = args.weights or (str(default_w) if default_w.is_file() else "synthetic")
    req = ModelRequest(weights=weights, shape=parse_shape(args.shape) if args.shape else None,
                       calib=CalibRequest(images=args.images, num=args.num))
    exported = export_stage(config, req, args.workdir)
    calib = calib_stage(config, ModelSpec(**exported.spec), exported.input_shape, req, args.workdir)
    return exported.onnx_path, calib.folder, exported.spec


def _worker(kind: str, onnx_path: Path, calib_folder: Path, spec: dict, method: str, limit_gb: float) -> dict:
    from vacc_deploy.calibset import CalibSet, CalibSource
    from vacc_deploy.spec import ModelSpec

    m = json.loads((calib_folder / "manifest.json").read_text())
    source = CalibSource(CalibSet(calib_folder, m["num"], m["sha256"], m), ModelSpec(**spec))
    t0 = time.perf_counter()
    if kind == "ours":
        from vacc_deploy.quant import calibrate

        calibrate(onnx_path, source, method, progress=False)
    else:
        limit = int(limit_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        _stock(onnx_path, source, method)
    from vacc_deploy.bench import peak_rss_mb

    return {"seconds": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb()}


def _stock(onnx_path: Path, source, method: str) -> None:
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(source)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"input": x}

    cm = {"percentile": CalibrationMethod.Percentile, "kl_divergence": CalibrationMethod.Entropy,
          "max": CalibrationMethod.MinMax}[method]
    quantize_static(str(onnx_path), "/tmp/stock_q.onnx", Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=cm)


def _measure(kind: str, onnx_path: Path, calib: Path, spec: dict, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, str(onnx_path), str(calib), json.dumps(spec),
           args.method, str(args.stock_limit_gb)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    out = {"kind": kind, "ok": res.returncode == 0}
    if res.returncode == 0:
        out.update(json.loads(res.stdout.strip().splitlines()[-1]))
    else:
        last = (res.stderr.strip().splitlines() or ["?"])[-1]
        out["error"] = f"failed under the {args.stock_limit_gb:.0f} GB address-space limit: {last[:160]}"
    return out


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        kind, onnx_path, calib, spec, method, limit = sys.argv[2:8]
        print(json.dumps(_worker(kind, Path(onnx_path), Path(calib), json.loads(spec), method, float(limit))))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("row")
    ap.add_argument("--num", type=int, default=8)
    ap.add_argument("--method", default="percentile", choices=("percentile", "kl_divergence", "max"))
    ap.add_argument("--weights", default=None)
    ap.add_argument("--images", type=Path, default=SHARED / "images" / "RealSRSet")
    ap.add_argument("--shape", default=None)
    ap.add_argument("--stock-limit-gb", type=float, default=16.0)
    ap.add_argument("--no-stock", action="store_true")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    onnx_path, calib, spec = _prepare(args)
    rows = [_measure("ours", onnx_path, calib, spec, args)]
    if not args.no_stock:
        rows.append(_measure("stock", onnx_path, calib, spec, args))
    print(f"{args.row}, {args.num} calibration samples, {args.method}")
    print(f"{'calibration':<28} {'peak RSS MB':>12} {'time s':>8}  note")
    for r in rows:
        name = "vacc-deploy (streaming)" if r["kind"] == "ours" else "ORT quantize_static (stock)"
        rss = f"{r['peak_rss_mb']:.0f}" if r.get("peak_rss_mb") else "-"
        secs = f"{r['seconds']:.1f}" if r.get("seconds") else "-"
        print(f"{name:<28} {rss:>12} {secs:>8}  {r.get('error', '')}")
    return 0 if rows[0]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
