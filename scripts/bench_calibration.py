"""Time and peak memory of calibration against one fp32 inference, and against ONNX Runtime's stock
``quantize_static``, on one row's model and calibration samples.

Usage: python scripts/bench_calibration.py ROW [--num N1 N2] [--method M] [--weights W]
           [--images DIR] [--shape 1xCxHxW] [--stock-limit-gb 16] [--no-stock] [--infer-runs 3]
           [--workdir DIR]

Prints, in one run: our calibration's seconds per image and peak RSS at two N (``--num``, default
8 and 50; equal values measure one N), fp32 inference seconds per image (the benchmark's own ORT
session: full graph optimization, same input shape, calibration samples as inputs, ``--infer-runs``
images after a warm-up run) and the ratio calibration /
inference per N, and stock ``quantize_static`` at the smaller N beside ours. ``--method`` defaults
to the row's seed method. Calibration s/img is the whole ``quant.calibrate`` call (model load,
sessions, one pass, ranges) over N.

Each measurement runs in a fresh subprocess; peak RSS is that process's own high-water mark
(``VmHWM``; ``ru_maxrss`` would carry the parent's peak across exec). Inference runs before, between
and after the calibrations and its median is the divisor, so load that changes during the run
weighs on both sides. The stock run gets an address-space limit (``--stock-limit-gb``) so that
running out of memory fails that run instead of the machine; a failure is reported.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _prepare(args: argparse.Namespace) -> tuple[Path, dict[int, Path], dict]:
    """Export (cached) and make the calibration sets in this process, before any measurement."""
    from vacc_deploy.config import load_row, parse_shape
    from dataclasses import asdict

    from vacc_deploy.pipeline import CalibRequest, ModelRequest, prepare

    config = load_row(args.row)
    args.method = args.method or config.quant.method
    default_w = SHARED / "weights" / (config.weights.official.file if config.weights.official else "")
    weights = args.weights or (str(default_w) if default_w.is_file() else "synthetic")
    shape = parse_shape(args.shape) if args.shape else None
    folders = {}
    for num in sorted(set(args.num)):
        req = ModelRequest(weights=weights, shape=shape, calib=CalibRequest(images=args.images, num=num))
        up = prepare(config, req, args.workdir, int8=True)
        exported, folders[num] = up.exported, up.calib.folder
    args.weights_label = ("official" if weights == str(default_w) else
                          weights if weights in ("synthetic", "house") else f"file {Path(weights).name}")
    return exported.onnx_path, folders, asdict(exported.spec)


def _source(calib_folder: Path, spec: dict):
    from vacc_deploy.calibration.dataset import CalibSet, CalibSource
    from vacc_deploy.spec import ModelSpec

    m = json.loads((calib_folder / "manifest.json").read_text())
    return CalibSource(CalibSet(calib_folder, m["num"], m["sha256"], m), ModelSpec(**spec))


def _infer(onnx_path: Path, source, runs: int) -> float:
    """fp32 seconds per image over ``runs`` images with the benchmark's session options (after one
    warm-up run when ``runs`` > 1)."""
    import onnxruntime as ort

    from vacc_deploy.backends.ort.session import session_options

    sess = ort.InferenceSession(str(onnx_path), session_options(), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    images = list(source)[:runs]
    if runs > 1:
        sess.run(None, {name: images[0]})
    t0 = time.perf_counter()
    for image in images:
        sess.run(None, {name: image})
    return (time.perf_counter() - t0) / len(images)


def _worker(kind: str, onnx_path: Path, calib_folder: Path, spec: dict, method: str, limit_gb: float,
            runs: int) -> dict:
    source = _source(calib_folder, spec)
    out: dict = {}
    t0 = time.perf_counter()
    if kind == "infer":
        out["s_per_img"] = _infer(onnx_path, source, runs)
    elif kind == "ours":
        from vacc_deploy.calibration import calibrate

        res = calibrate(onnx_path, source, method, progress=False)
        out.update(segments=res.segments, s_per_img=(time.perf_counter() - t0) / len(source))
    else:
        limit = int(limit_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        _stock(onnx_path, source, method)
        out["s_per_img"] = (time.perf_counter() - t0) / len(source)
    from vacc_deploy.benchmark.measure import peak_rss_mb

    return {**out, "seconds": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb()}


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
           args.method, str(args.stock_limit_gb), str(args.infer_runs)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    out = {"kind": kind, "ok": res.returncode == 0}
    if res.returncode == 0:
        out.update(json.loads(res.stdout.strip().splitlines()[-1]))
    else:
        last = (res.stderr.strip().splitlines() or ["?"])[-1]
        limit = f"under the {args.stock_limit_gb:.0f} GB address-space limit" if kind == "stock" else ""
        out["error"] = f"failed {limit}: {last[:160]}"
    return out


def _report(args: argparse.Namespace, ours: dict[int, dict], infers: list[dict], stock: dict | None) -> None:
    secs = [r["s_per_img"] for r in infers if r["ok"]]
    infer = statistics.median(secs) if secs else float("nan")
    print(f"{args.row}, {args.method}, weights {args.weights_label}; fp32 inference {infer:.3f} s/img "
          f"(median of {len(secs)}: {', '.join(f'{s:.3f}' for s in secs)})")
    print(f"{'calibration':<30} {'N':>4} {'s/img':>8} {'ratio':>6} {'segments':>8} {'peak RSS MB':>12}  note")
    for num, r in ours.items():
        ratio = f"{r['s_per_img'] / infer:.2f}" if r["ok"] else "-"
        s = f"{r['s_per_img']:.3f}" if r["ok"] else "-"
        rss = f"{r['peak_rss_mb']:.0f}" if r["ok"] else "-"
        print(f"{'vacc-deploy (one pass)':<30} {num:>4} {s:>8} {ratio:>6} {r.get('segments', '-'):>8} {rss:>12}  "
              f"{r.get('error', '')}")
    if stock is not None:
        s = f"{stock['s_per_img']:.3f}" if stock["ok"] else "-"
        rss = f"{stock['peak_rss_mb']:.0f}" if stock["ok"] else "-"
        print(f"{'ORT quantize_static (stock)':<30} {min(ours):>4} {s:>8} {'':>6} {'':>8} {rss:>12}  "
              f"{stock.get('error', '')}")
    if len(ours) == 2 and all(r["ok"] for r in ours.values()):
        lo, hi = (ours[n]["peak_rss_mb"] for n in sorted(ours))
        print(f"peak RSS N={max(ours)} vs N={min(ours)}: {100 * (hi - lo) / lo:+.1f} %")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        kind, onnx_path, calib, spec, method, limit, runs = sys.argv[2:9]
        print(json.dumps(_worker(kind, Path(onnx_path), Path(calib), json.loads(spec), method, float(limit),
                                 int(runs))))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("row")
    ap.add_argument("--num", type=int, nargs=2, default=[8, 50], metavar=("N1", "N2"))
    ap.add_argument("--method", default=None, choices=("percentile", "kl_divergence", "max"))
    ap.add_argument("--weights", default=None)
    ap.add_argument("--images", type=Path, default=SHARED / "images" / "RealSRSet")
    ap.add_argument("--shape", default=None)
    ap.add_argument("--stock-limit-gb", type=float, default=16.0)
    ap.add_argument("--no-stock", action="store_true")
    ap.add_argument("--infer-runs", type=int, default=3, help="images per inference measurement (default 3)")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    onnx_path, folders, spec = _prepare(args)
    small = min(folders)
    infers = [_measure("infer", onnx_path, folders[small], spec, args)]
    ours = {}
    for num in sorted(folders):
        ours[num] = _measure("ours", onnx_path, folders[num], spec, args)
        infers.append(_measure("infer", onnx_path, folders[small], spec, args))
    stock = None if args.no_stock else _measure("stock", onnx_path, folders[small], spec, args)
    _report(args, ours, infers, stock)
    return 0 if all(r["ok"] for r in ours.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
