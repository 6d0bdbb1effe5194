"""The report's content as a list of neutral blocks, rendered alike to Markdown and HTML by
:mod:`vacc_deploy.report.render`. A block is a :class:`Block`: ``kind`` is one of "h1", "h2", "h3",
"p", "banner" (``level`` = "danger" | "warn" | "ok"), "table" (``headers``, ``rows``), "image"
(``path``, ``text`` = caption), "crops" (``crop``), "code" (``text``, ``lang``), "details" (a
collapsible code block). Table cells are plain strings in which ``**bold**`` is allowed."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from vacc_deploy.backends import short_label
from vacc_deploy.report.crops import worst_images
from vacc_deploy.report.model import CropSet, ReportData
from vacc_deploy.report.plots import result_label
from vacc_deploy.benchmark.notes import speed_notes

SEED_HEADERS = ["Models", "Flops(G)", "Params(M)", "PSNR(dB)", "SSIM", "Shape"]
EXTRA_HEADERS = ["ΔPSNR(dB)", "ΔSSIM", "Fidelity PSNR(dB)", "Max |Δ| vs fp32"]
SYNTHETIC_BANNER = "SYNTHETIC WEIGHTS — accuracy numbers are meaningless, plumbing only"
HOUSE_BANNER = ("HOUSE WEIGHTS (not the official checkpoint) — accuracy is not comparable with the "
                "paper or the vendor zoo")


@dataclass
class Block:
    """One piece of report content (see the module docstring)."""

    kind: str
    text: str = ""
    level: str = ""
    lang: str = ""
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    path: str | None = None
    crop: CropSet | None = None


def num(v: Any, digits: int = 3, signed: bool = False) -> str:
    """Format a metric: None -> "-", non-finite (also the JSON strings "inf"/"nan") -> "inf"/"nan"."""
    if v is None:
        return "-"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not math.isfinite(f):
        return "inf" if f > 0 else ("-inf" if f < 0 else "nan")
    return f"{f:+.{digits}f}" if signed else f"{f:.{digits}f}"


def shape_str(shape: list[int] | None, drop_batch: bool = True) -> str:
    """[1, 3, 128, 128] -> "3x128x128" (the seeds' layout drops the batch)."""
    if not shape:
        return "-"
    dims = shape[1:] if drop_batch and len(shape) == 4 else shape
    return "x".join(str(d) for d in dims)


def weights_label(weights: str, provenance: str) -> str:
    """"label (provenance)", without repeating the provenance when the label already says it."""
    return weights if provenance in weights else f"{weights} ({provenance})"


def weights_sentence(data: ReportData) -> str:
    """Which weights produced the numbers, in words (the row description says what the row *is*)."""
    name = data.weights.split(":", 1)[1] if ":" in data.weights else data.weights
    what = {"official": f"the official checkpoint {name}",
            "house": f"house weights {name}, trained by this project (not the official checkpoint)",
            "synthetic": f"synthetic weights {name}: random, so accuracy numbers are meaningless",
            "file": f"a user checkpoint, {name}"}.get(data.provenance, data.weights)
    return what + (f"; sha256 {data.weights_sha256}" if data.weights_sha256 else "")


def banner(provenance: str, weights: str) -> Block | None:
    """The loud banner for synthetic or house weights (None for official / file weights)."""
    if provenance == "synthetic":
        return Block("banner", SYNTHETIC_BANNER, level="danger")
    if provenance == "house":
        return Block("banner", HOUSE_BANNER, level="warn")
    return None


def model_label(row: str, r: dict[str, Any], first: bool) -> str:
    """The seeds' model name: plain for the fp32 reference, else ``row **backend quant precision**``."""
    if first and r.get("precision") == "fp32":
        return row
    parts = [short_label(r.get("backend") or ""), r.get("quant") or "",
             r.get("label") or r.get("precision") or ""]  # label: "int8 (vacc, emulated)", ...
    return f"{row} **{' '.join(p for p in parts if p)}**"


def accuracy_rows(data: ReportData) -> list[list[str]]:
    """The accuracy table in the seeds' layout plus delta and fidelity columns."""
    rows = []
    shape = shape_str(data.input_shape)
    for i, r in enumerate((data.eval or {}).get("results") or []):
        first = i == 0
        ref = first and r.get("precision") == "fp32"
        rows.append([model_label(data.row, r, first), num(data.flops_g) if first else "-",
                     num(data.params_m) if first else "-", num(r.get("psnr")), num(r.get("ssim"), 4), shape,
                     "ref" if ref else num(r.get("delta_psnr"), 3, True),
                     "ref" if ref else num(r.get("delta_ssim"), 4, True),
                     "ref" if ref else num(r.get("fidelity_psnr"), 2),
                     "ref" if ref else num(r.get("fidelity_max_abs"), 0)])
    return rows


def overview(data: ReportData) -> list[Block]:
    """Title, banner, the row's facts."""
    blocks = [Block("h1", f"vacc-deploy report: {data.row}")]
    b = banner(data.provenance, data.weights)
    if b:
        blocks.append(b)
    if data.description:
        blocks.append(Block("p", f"**Model:** {data.description}"))
    blocks.append(Block("p", f"**Weights:** {weights_sentence(data)}"))
    facts = [["Row", data.row], ["Weights", weights_label(data.weights, data.provenance)],
             ["Scale", f"x{data.scale}" if data.scale else "-"],
             ["Input shape", shape_str(data.input_shape, False)], ["Output shape", shape_str(data.output_shape, False)],
             ["FLOPs (G)", num(data.flops_g)], ["Params (M)", num(data.params_m)]]
    if data.created:
        facts.append(["Created", data.created])
    blocks.append(Block("table", headers=["", ""], rows=facts))
    blocks += [Block("p", f"Note: {n}") for n in data.notes]
    return blocks


def accuracy(data: ReportData) -> list[Block]:
    """The accuracy section (nothing when there is no eval)."""
    ev = data.eval
    if not ev:
        return [Block("h2", "Accuracy"), Block("p", "No evaluation in this run.")]
    ctx = (f"Dataset {ev.get('dataset', '-')}, protocol {ev.get('protocol', '-')}, {ev.get('n_images', '-')} "
           f"images, rounding {ev.get('rounding', '-')}. Deltas and fidelity are against the fp32 model "
           "(fidelity: PSNR of each model's output against fp32's own output; max |Δ| in uint8 levels).")
    return [Block("h2", "Accuracy"), Block("p", ctx),
            Block("table", headers=SEED_HEADERS + EXTRA_HEADERS, rows=accuracy_rows(data))]


def benchmark(data: ReportData) -> list[Block]:
    """The benchmark table and plot."""
    bm = data.benchmark
    if not bm:
        return [Block("h2", "Benchmark"), Block("p", "No benchmark in this run.")]
    rows = []
    for r in bm.get("results") or []:
        lat = r.get("latency_ms") or {}
        rows.append([r.get("backend") or "-", r.get("precision") or "-", r.get("quant") or "-",
                     num(lat.get("p50"), 2), num(lat.get("p90"), 2), num(lat.get("mean"), 2),
                     num(r.get("images_per_s"), 2), num(r.get("megapixels_per_s"), 2),
                     num(r.get("peak_rss_mb"), 0)])
    mach = bm.get("machine") or {}
    text = f"Input {shape_str(bm.get('input_shape'), False)}" + (
        "; machine " + ", ".join(f"{k} {v}" for k, v in mach.items()) if isinstance(mach, dict) and mach else "")
    blocks = [Block("h2", "Benchmark"), Block("p", text),
              Block("table", headers=["Backend", "Precision", "Quant", "p50 (ms)", "p90 (ms)", "mean (ms)",
                                      "img/s", "MP/s", "peak RSS (MB)"], rows=rows)]
    blocks += [Block("p", f"Why: {note}") for note in speed_notes(bm)]
    if data.benchmark_plot:
        blocks.append(Block("image", "Images per second per backend and precision", path=data.benchmark_plot))
    return blocks


def worst(data: ReportData) -> list[Block]:
    """The worst images: a table of PSNR drops and, where given, their crops."""
    blocks = [Block("h2", "Worst images (int8 vs fp32)")]
    ws = worst_images(data.eval, n=5) if data.eval else []
    if ws:
        rows = [[w["image"], f"{w['backend']} {w['quant'] or ''}".strip(), num(w["psnr_fp32"]),
                 num(w["psnr_int8"]), num(-w["psnr_drop"], 3, True)] for w in ws]
        blocks.append(Block("table", headers=["Image", "int8 build", "fp32 PSNR", "int8 PSNR", "ΔPSNR"], rows=rows))
    if data.crops:
        blocks.append(Block("p", "Crops at the window where |int8 - fp32| is largest: LR (nearest-upscaled), "
                                 "fp32, int8, HR, and the |int8 - fp32| heat map (max over channels)."))
    blocks += [Block("crops", crop=c) for c in data.crops]
    if not ws and not data.crops:
        blocks.append(Block("p", "No int8 results with per-image scores in this run."))
    return blocks


def layer_analysis(data: ReportData, top: int = 10) -> list[Block]:
    """The int8 layers that lose most (SQNR of each layer's output against fp32), and the plot."""
    an = data.analysis
    if not an:
        return []
    from vacc_deploy.evaluation.analysis import ranked_layers

    out = next((r for r in an["layers"] if r["conv_index"] is None), None)
    text = (f"int8 build {an.get('quant')}, {an.get('images')} calibration samples. SQNR of each int8 layer's "
            "output against fp32: with the layer quantized alone, and with the errors of every layer before it"
            + (f"; network output {num(out['accumulated_sqnr_db'], 2)} dB." if out else "."))
    rows = [[str(r["conv_index"]), r["layer"], num(r["alone_sqnr_db"], 2), num(r["alone_cosine"], 6),
             num(r["accumulated_sqnr_db"], 2), num(r["accumulated_cosine"], 6)] for r in ranked_layers(an)[:top]]
    blocks = [Block("h2", "int8 error per layer (worst first)"), Block("p", text),
              Block("table", headers=["Conv index", "Layer", "SQNR alone (dB)", "cos alone", "SQNR accumulated (dB)",
                                      "cos accumulated"], rows=rows)]
    if data.analysis_plot:
        blocks.append(Block("image", "SQNR per int8 layer (graph order)", path=data.analysis_plot))
    return blocks


def _kv(d: dict[str, Any]) -> list[list[str]]:
    return [[str(k), v if isinstance(v, str) else json.dumps(v, sort_keys=True)] for k, v in sorted(d.items())]


def builds(data: ReportData) -> list[Block]:
    """Each build's settings, manifest and vamc YAML."""
    blocks = [Block("h2", "Builds")]
    if not data.builds:
        blocks.append(Block("p", "No builds recorded."))
    for b in data.builds:
        title = " ".join(p for p in (b.precision, b.quant or "", f"({b.backend})" if b.backend else "") if p)
        blocks.append(Block("h3", title))
        if b.precision == "fp32" and not (b.settings or b.manifest or b.vamc_yaml):
            blocks.append(Block("p", "The exported fp32 ONNX model itself (no build step; its sha256 is in the "
                                     "manifest below)."))
        if b.settings:
            blocks.append(Block("table", headers=["Setting", "Value"], rows=_kv(b.settings)))
        if b.manifest:
            blocks.append(Block("details", json.dumps(b.manifest, indent=2, sort_keys=True, default=str),
                                lang="json", level="Build manifest"))
        if b.vamc_yaml:
            blocks.append(Block("p", "vamc build YAML:"))
            blocks.append(Block("code", b.vamc_yaml, lang="yaml"))
    return blocks


def manifest(data: ReportData) -> list[Block]:
    """Stages, then the run manifest: versions, hashes, timings, and anything else as JSON."""
    blocks = [Block("h2", "Manifest")]
    if data.stages:
        rows = [[s.stage, s.status, num(s.seconds, 2)] for s in data.stages]
        blocks.append(Block("table", headers=["Stage", "Status", "Seconds"], rows=rows))
    m = dict(data.manifest or {})
    for key, title in (("versions", "Versions"), ("hashes", "Hashes"), ("timings", "Timings (s)")):
        if isinstance(m.get(key), dict) and m[key]:
            blocks += [Block("h3", title), Block("table", headers=["", ""], rows=_kv(m.pop(key)))]
    if m:
        blocks.append(Block("details", json.dumps(m, indent=2, sort_keys=True, default=str), lang="json",
                            level="Other manifest entries"))
    return blocks


def report_blocks(data: ReportData) -> list[Block]:
    """The whole report, in order."""
    return (overview(data) + accuracy(data) + benchmark(data) + worst(data) + layer_analysis(data) + builds(data)
            + manifest(data))


def labels(results: list[dict[str, Any]]) -> list[str]:
    """Labels of benchmark results (re-exported for the compare page)."""
    return [result_label(r) for r in results]
