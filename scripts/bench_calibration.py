"""Time and peak memory of calibration against one fp32 inference, and against ONNX Runtime's stock
``quantize_static``, on one row's model and calibration samples.

Usage: python scripts/bench_calibration.py ROW [--num N1 N2] [--repeat R] [--method M] [--weights W]
           [--images DIR] [--resize-sources] [--shape 1xCxHxW] [--onnx MODEL] [--segment-mb MB] [--stock-limit-gb 16]
           [--no-stock] [--infer-runs 3] [--workdir DIR]

Prints, in one run: our calibration's seconds per image and peak RSS at two N (``--num``, default
8 and 50; equal values measure one N), fp32 inference seconds per image (the benchmark's own ORT
session: full graph optimization, same input shape, calibration samples as inputs, ``--infer-runs``
images after a warm-up run), the ratio calibration / inference per N (wall time; and CPU time, which load disturbs less), the split of calibration
time into a fixed cost and a cost per image (from the two N), the load (``cpu_probe_ms`` before and
after each measurement, load average), and stock ``quantize_static`` at the smaller N beside ours.
``--method`` defaults to the row's seed method. Calibration s/img is the whole ``calibration.calibrate``
call (model load, sessions, one pass, ranges) over N.

``--repeat R`` runs the whole interleaved sequence (inference, ours at N1, inference, ours at N2,
inference) R times; each ratio divides a calibration by the median of the inference runs of its own
repeat, and the summary gives the median ratio over the repeats. Each measurement runs in a fresh
subprocess; peak RSS is that process's own high-water mark (``VmHWM``; ``ru_maxrss`` would carry the
parent's peak across exec). The stock run gets an address-space limit (``--stock-limit-gb``) so that
running out of memory fails that run instead of the machine; a failure is reported.

``--resize-sources`` first writes every image of ``--images`` resized (bicubic) to the model's input
size into the work folder and calibrates on those: for inputs larger than any shared calibration
image (bicubic_pp_x3 at 1080x1920; calibration sets skip images under half the input size). The
cost of calibration does not depend on the images' content beyond the ranges' growth.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's vacc_deploy, not an installed one
SHARED = REPO.parent / "shared" / "data"


def _resized_sources(images: Path, hw: tuple[int, int], workdir: Path | None) -> Path:
    """``images`` resized to ``hw`` (cv2.INTER_CUBIC), written once into the work folder."""
    import cv2

    out = (workdir or Path("work")) / "bench_calibration_sources" / f"{images.name}-{hw[0]}x{hw[1]}"
    if not out.is_dir():
        tmp = out.with_name(out.name + ".partial")
        tmp.mkdir(parents=True, exist_ok=True)
        for path in sorted(images.glob("*.png")):
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is not None:
                cv2.imwrite(str(tmp / path.name), cv2.resize(img, (hw[1], hw[0]), interpolation=cv2.INTER_CUBIC))
        tmp.rename(out)
    return out


def _prepare(args: argparse.Namespace) -> tuple[Path, dict[int, Path], dict]:
    """Export (cached) and make the calibration sets in this process, before any measurement."""
    from vacc_deploy.config import load_row, parse_shape
    from dataclasses import asdict

    from vacc_deploy.pipeline import CalibRequest, ModelRequest
    from vacc_deploy.pipeline.stages import calib_stage, export_stage, weights_stage

    config = load_row(args.row)
    args.method = args.method or config.quant.method
    default_w = SHARED / "weights" / (config.weights.official.file if config.weights.official else "")
    weights = args.weights or (str(default_w) if default_w.is_file() else "synthetic")
    shape = parse_shape(args.shape) if args.shape else None
    if args.onnx:
        exported = _given_export(args.onnx)
    else:
        exported = export_stage(config, weights_stage(config, weights), ModelRequest(weights=weights, shape=shape),
                                args.workdir)
    images = args.images
    if args.resize_sources:
        images = _resized_sources(images, tuple(exported.input_shape[2:]), args.workdir)
    folders = {}
    for num in sorted(set(args.num)):
        req = ModelRequest(weights=weights, shape=shape, calib=CalibRequest(images=images, num=num))
        folders[num] = calib_stage(config, exported, req.calib, args.workdir).folder
    args.weights_label = ("official" if weights == str(default_w) else
                          weights if weights in ("synthetic", "house") else f"file {Path(weights).name}")
    args.shape_label = "x".join(str(d) for d in exported.input_shape)
    args.images_label = f"{images}" + (" (resized copies)" if args.resize_sources else "")
    return exported.onnx_path, folders, asdict(exported.spec)


def _given_export(onnx_path: Path):
    """The export result of ``--onnx`` (a model.onnx with its export manifest.json beside it)."""
    from dataclasses import fields

    from vacc_deploy.export import ExportResult
    from vacc_deploy.spec import ModelSpec

    data = json.loads((onnx_path.parent / "manifest.json").read_text())
    kept = {k: v for k, v in data.items() if k in {f.name for f in fields(ExportResult)}}
    return ExportResult(**{**kept, "onnx_path": onnx_path, "spec": ModelSpec(**data["spec"]),
                           "input_shape": tuple(data["input_shape"]), "output_shape": tuple(data["output_shape"]),
                           "cached": True})


def _source(calib_folder: Path, spec: dict):
    from vacc_deploy.calibration.dataset import CalibSet, CalibSource
    from vacc_deploy.spec import ModelSpec

    m = json.loads((calib_folder / "manifest.json").read_text())
    return CalibSource(CalibSet(calib_folder, m["num"], m["sha256"], m), ModelSpec(**spec))


def _infer(onnx_path: Path, source, runs: int) -> tuple[float, float]:
    """fp32 (wall, CPU) seconds per image over ``runs`` images with the benchmark's session options
    (after one warm-up run when ``runs`` > 1)."""
    import onnxruntime as ort

    from vacc_deploy.backends.ort.session import session_options

    sess = ort.InferenceSession(str(onnx_path), session_options(), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    images = list(source)[:runs]
    if runs > 1:
        sess.run(None, {name: images[0]})
    t0, c0 = time.perf_counter(), time.process_time()
    for image in images:
        sess.run(None, {name: image})
    return (time.perf_counter() - t0) / len(images), (time.process_time() - c0) / len(images)


def _worker(kind: str, onnx_path: Path, calib_folder: Path, spec: dict, method: str, limit_gb: float,
            runs: int, segment_mb: float) -> dict:
    source = _source(calib_folder, spec)
    out: dict = {}
    t0, c0 = time.perf_counter(), time.process_time()
    if kind == "infer":
        out["s_per_img"], out["cpu_per_img"] = _infer(onnx_path, source, runs)
    elif kind == "ours":
        from vacc_deploy.calibration import DEFAULT_SEGMENT_BYTES, calibrate

        seg = int(segment_mb * 1e6) if segment_mb > 0 else DEFAULT_SEGMENT_BYTES
        res = calibrate(onnx_path, source, method, progress=False, max_segment_bytes=seg)
        out.update(segments=res.segments, s_per_img=(time.perf_counter() - t0) / len(source),
                   cpu_per_img=(time.process_time() - c0) / len(source))
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


def _probe() -> float:
    from vacc_deploy.benchmark.measure import cpu_probe_ms

    return cpu_probe_ms()


def _measure(kind: str, onnx_path: Path, calib: Path, spec: dict, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, str(onnx_path), str(calib), json.dumps(spec),
           args.method, str(args.stock_limit_gb), str(args.infer_runs), str(args.segment_mb)]
    before, load = _probe(), os.getloadavg()[0]
    res = subprocess.run(cmd, capture_output=True, text=True)
    out = {"kind": kind, "ok": res.returncode == 0, "probe": (before, _probe()), "load": load}
    if res.returncode == 0:
        out.update(json.loads(res.stdout.strip().splitlines()[-1]))
    else:
        last = (res.stderr.strip().splitlines() or ["?"])[-1]
        limit = f"under the {args.stock_limit_gb:.0f} GB address-space limit" if kind == "stock" else ""
        out["error"] = f"failed {limit}: {last[:160]}"
    return out


def _fmt(r: dict, key: str, spec: str) -> str:
    return format(r[key], spec) if r["ok"] else "-"


def _report_repeat(k: int, ours: dict[int, dict], infers: list[dict]) -> dict[int, float]:
    """Print one repeat's lines; return its ratio per N."""
    secs = [r["s_per_img"] for r in infers if r["ok"]]
    infer = statistics.median(secs) if secs else float("nan")
    cpu = statistics.median([r["cpu_per_img"] for r in infers if r["ok"]] or [float("nan")])
    probes = " ".join(f"{r['probe'][0]:.0f}/{r['probe'][1]:.0f}" for r in infers)
    print(f"repeat {k}: fp32 inference {infer:.3f} s/img (median of {', '.join(f'{s:.3f}' for s in secs)}; "
          f"CPU {cpu:.3f} s/img; probe ms {probes})")
    ratios = {}
    for num, r in ours.items():
        ratios[num] = r["s_per_img"] / infer if r["ok"] else float("nan")
        cpu_ratio = r["cpu_per_img"] / cpu if r["ok"] else float("nan")
        print(f"  {'vacc-deploy (one pass)':<28} N={num:<4} {_fmt(r, 's_per_img', '.3f'):>8} s/img  ratio "
              f"{ratios[num]:.2f}  (CPU {_fmt(r, 'cpu_per_img', '.3f')} s/img, CPU ratio {cpu_ratio:.2f})  "
              f"segments {r.get('segments', '-')}  peak RSS {_fmt(r, 'peak_rss_mb', '.0f')} MB  "
              f"probe ms {r['probe'][0]:.0f}/{r['probe'][1]:.0f}  load {r['load']:.1f}  {r.get('error', '')}")
    if len(ours) == 2 and all(r["ok"] for r in ours.values()):
        (n1, r1), (n2, r2) = sorted(ours.items())
        per = (r2["s_per_img"] * n2 - r1["s_per_img"] * n1) / (n2 - n1)
        fixed = r1["s_per_img"] * n1 - per * n1
        print(f"  split: {per:.3f} s per image ({per / infer:.2f} inferences) + {fixed:.1f} s fixed")
        print(f"  peak RSS N={n2} vs N={n1}: {100 * (r2['peak_rss_mb'] - r1['peak_rss_mb']) / r1['peak_rss_mb']:+.1f} %")
    return ratios


def _run(args: argparse.Namespace, onnx_path: Path, folders: dict[int, Path], spec: dict) -> bool:
    small = min(folders)
    all_ratios: dict[int, list[float]] = {n: [] for n in folders}
    ok = True
    for k in range(1, args.repeat + 1):
        infers = [_measure("infer", onnx_path, folders[small], spec, args)]
        ours = {}
        for num in sorted(folders):
            ours[num] = _measure("ours", onnx_path, folders[num], spec, args)
            infers.append(_measure("infer", onnx_path, folders[small], spec, args))
            ok = ok and ours[num]["ok"]
        for num, ratio in _report_repeat(k, ours, infers).items():
            all_ratios[num].append(ratio)
        sys.stdout.flush()
    if args.repeat > 1:
        for num, ratios in all_ratios.items():
            print(f"median ratio N={num} over {len(ratios)} repeats: {statistics.median(ratios):.2f} "
                  f"({', '.join(f'{r:.2f}' for r in ratios)})")
    if not args.no_stock:
        stock = _measure("stock", onnx_path, folders[small], spec, args)
        print(f"ORT quantize_static (stock) N={small}: {_fmt(stock, 's_per_img', '.3f')} s/img, peak RSS "
              f"{_fmt(stock, 'peak_rss_mb', '.0f')} MB {stock.get('error', '')}")
    return ok


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        kind, onnx_path, calib, spec, method, limit, runs, seg = sys.argv[2:10]
        print(json.dumps(_worker(kind, Path(onnx_path), Path(calib), json.loads(spec), method, float(limit),
                                 int(runs), float(seg))))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("row")
    ap.add_argument("--num", type=int, nargs=2, default=[8, 50], metavar=("N1", "N2"))
    ap.add_argument("--repeat", type=int, default=1, help="interleaved repeats of the whole sequence (default 1)")
    ap.add_argument("--method", default=None, choices=("percentile", "kl_divergence", "max"))
    ap.add_argument("--weights", default=None)
    ap.add_argument("--images", type=Path, default=SHARED / "images" / "RealSRSet")
    ap.add_argument("--resize-sources", action="store_true",
                    help="calibrate on copies of --images resized to the input size")
    ap.add_argument("--shape", default=None)
    ap.add_argument("--onnx", type=Path, default=None,
                    help="an exported model.onnx (manifest.json beside it) to use instead of exporting "
                         "(e.g. edsr_x2, whose export with its parity check takes tens of minutes)")
    ap.add_argument("--segment-mb", type=float, default=0, help="segment budget in MB (default: the library's)")
    ap.add_argument("--stock-limit-gb", type=float, default=16.0)
    ap.add_argument("--no-stock", action="store_true")
    ap.add_argument("--infer-runs", type=int, default=3, help="images per inference measurement (default 3)")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    onnx_path, folders, spec = _prepare(args)
    print(f"{args.row}, {args.method}, weights {args.weights_label}, input {args.shape_label}, "
          f"calibration images {args.images_label}; {os.cpu_count()} CPUs")
    return 0 if _run(args, onnx_path, folders, spec) else 1


if __name__ == "__main__":
    sys.exit(main())
