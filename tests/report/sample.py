"""A small synthetic ReportData (no model runs): fp32/fp16/int8 percentile/kl rows, 2 images, a
fake benchmark with 3 results and a tiny matplotlib plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vacc_deploy.report.crops import make_crop_set, worst_images
from vacc_deploy.report.model import BuildInfo, ReportData, StageInfo

CANDS = [("fp32", None, 0.0), ("fp16", None, 0.01), ("int8", "percentile", 1.2), ("int8", "kl_divergence", 2.1)]


def _eval(row: str) -> dict:
    per, results = [], []
    for img, base in (("baby.png", 33.5), ("bird.png", 35.1)):
        for prec, quant, drop in CANDS:
            d = drop * (1.5 if img == "bird.png" else 1.0)
            per.append({"image": img, "precision": prec, "quant": quant, "backend": "onnxruntime",
                        "psnr": base - d, "ssim": 0.95 - d / 100, "fidelity_psnr": "inf" if prec == "fp32" else 50 - 5 * d,
                        "fidelity_max_abs": 0 if prec == "fp32" else int(10 * d + 1)})
    for prec, quant, drop in CANDS:
        results.append({"precision": prec, "quant": quant, "backend": "onnxruntime", "psnr": 34.3 - drop * 1.25,
                        "ssim": 0.95 - drop / 80, "delta_psnr": -drop * 1.25, "delta_ssim": -drop / 80,
                        "fidelity_psnr": "inf" if prec == "fp32" else 50 - 5 * drop,
                        "fidelity_max_abs": 0 if prec == "fp32" else int(10 * drop + 1)})
    return {"row": row, "dataset": "Set5", "protocol": "standard", "n_images": 2, "rounding": "round",
            "weights": "synthetic", "results": results, "per_image": per}


def _benchmark(row: str) -> dict:
    res = []
    for i, (prec, quant) in enumerate((("fp32", None), ("fp16", None), ("int8", "percentile"))):
        ms = 40.0 / (i + 1)
        res.append({"backend": "onnxruntime", "precision": prec, "quant": quant,
                    "latency_ms": {"p50": ms, "p90": ms * 1.1, "mean": ms * 1.02}, "images_per_s": 1000 / ms,
                    "megapixels_per_s": 1000 / ms * 0.065, "peak_rss_mb": 300 + 10 * i})
    return {"row": row, "input_shape": [1, 3, 128, 128], "machine": {"cpu_count": 2}, "results": res}


def _plot(path: Path) -> str:
    fig = Figure(figsize=(3, 2))
    FigureCanvasAgg(fig)
    fig.add_subplot(1, 1, 1).bar([0, 1, 2], [25, 50, 75])
    fig.savefig(path, format="png", dpi=60)
    return str(path)


def _crops(ev: dict, src: Path) -> list:
    rng = np.random.default_rng(0)
    crops = []
    for w in worst_images(ev, n=2):
        hr = rng.integers(0, 256, (128, 160, 3), dtype=np.uint8)
        lr = hr[::2, ::2].copy()
        fp32 = hr.copy()
        int8 = fp32.copy()
        int8[40:80, 60:100] = np.clip(int8[40:80, 60:100].astype(int) + 12, 0, 255).astype(np.uint8)
        crops.append(make_crop_set(w, lr, hr, fp32, int8, src))
    return crops


def sample_report(src: Path, row: str = "lesrcnn_x2", provenance: str = "synthetic") -> ReportData:
    """A ReportData whose images are written under ``src``."""
    src.mkdir(parents=True, exist_ok=True)
    ev = _eval(row)
    build = BuildInfo("int8", "percentile", "onnxruntime", {"per_channel": True, "percentile": 99.99, "num": 50},
                      {"hashes": {"onnx": "ab12"}, "seconds": 3.2}, "model:\n  name: lesrcnn_x2\n  dtype: int8\n")
    return ReportData(row=row, description="LESRCNN x2 (synthetic sample)", weights=provenance,
                      provenance=provenance, scale=2, input_shape=[1, 3, 128, 128], output_shape=[1, 3, 256, 256],
                      flops_g=44.459, params_m=0.626, eval=ev, benchmark=_benchmark(row),
                      benchmark_plot=_plot(src / "bench.png"), crops=_crops(ev, src),
                      builds=[BuildInfo("fp32"), BuildInfo("fp16", None, "onnxruntime", {"keep_io_types": True}), build],
                      manifest={"versions": {"python": "3.11", "numpy": "1.26"}, "hashes": {"weights": "deadbeef"},
                                "timings": {"export": 1.5, "calib": 2.0}, "command": "vacc-deploy eval"},
                      stages=[StageInfo("export", "reused", 0.01), StageInfo("build", "done", 3.2)],
                      created="2025-01-01T00:00:00")
