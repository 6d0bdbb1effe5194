"""One page comparing several rows or runs (``vacc-deploy report --compare DIR1 DIR2 ...``):
provenance, an accuracy summary per run (fp32 PSNR/SSIM, the best int8 build's deltas and its
fidelity to fp32) and a speed summary (images per second per backend/precision)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from vacc_deploy.artifacts import atomic_write_text
from vacc_deploy.report.model import ReportData
from vacc_deploy.report.plots import result_label
from vacc_deploy.report.render import html_page, md_page
from vacc_deploy.report.sections import Block, banner, num, shape_str, weights_label


def _f(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def best_int8(data: ReportData) -> dict[str, Any] | None:
    """The int8 eval result with the highest PSNR (None without int8 results)."""
    res = [r for r in (data.eval or {}).get("results") or [] if r.get("precision") == "int8"]
    return max(res, key=lambda r: _f(r.get("psnr")) if not math.isnan(_f(r.get("psnr"))) else -1e9) if res else None


def _fp32(data: ReportData) -> dict[str, Any]:
    res = (data.eval or {}).get("results") or []
    return next((r for r in res if r.get("precision") == "fp32"), {})


def accuracy_summary(datas: list[ReportData], labels: list[str]) -> Block:
    """Per run: provenance, dataset/protocol, fp32 PSNR/SSIM, best int8 build and its deltas/fidelity."""
    rows = []
    for label, d in zip(labels, datas):
        ev, ref, b = d.eval or {}, _fp32(d), best_int8(d)
        name = "-" if b is None else f"{b.get('backend') or ''} {b.get('quant') or ''}".strip()
        rows.append([label, d.row, weights_label(d.weights, d.provenance),
                     f"{ev.get('dataset', '-')} / {ev.get('protocol', '-')}" if ev else "-",
                     shape_str(d.input_shape), num(ref.get("psnr")), num(ref.get("ssim"), 4), name,
                     num((b or {}).get("delta_psnr"), 3, True), num((b or {}).get("delta_ssim"), 4, True),
                     num((b or {}).get("fidelity_psnr"), 2)])
    return Block("table", rows=rows, headers=["Run", "Row", "Weights", "Dataset / protocol", "Shape",
                                              "fp32 PSNR(dB)", "fp32 SSIM", "Best int8", "ΔPSNR(dB)", "ΔSSIM",
                                              "Fidelity PSNR(dB)"])


def speed_summary(datas: list[ReportData], labels: list[str]) -> Block:
    """Images per second: one row per run, one column per backend/precision/quant seen in any run."""
    cols: list[str] = []
    for d in datas:
        for r in (d.benchmark or {}).get("results") or []:
            if result_label(r) not in cols:
                cols.append(result_label(r))
    rows = []
    for label, d in zip(labels, datas):
        got = {result_label(r): r.get("images_per_s") for r in (d.benchmark or {}).get("results") or []}
        rows.append([label, shape_str((d.benchmark or {}).get("input_shape"))] + [num(got.get(c), 2) for c in cols])
    return Block("table", headers=["Run", "Input"] + [f"{c} (img/s)" for c in cols], rows=rows)


def compare_blocks(datas: list[ReportData], labels: list[str] | None = None) -> list[Block]:
    """The compare page's content. ``labels`` name the runs (default: the row names)."""
    labels = labels or [d.row for d in datas]
    blocks = [Block("h1", f"vacc-deploy comparison: {len(datas)} runs")]
    for label, d in zip(labels, datas):
        b = banner(d.provenance, d.weights)
        if b:
            blocks.append(Block("banner", f"{label}: {b.text}", level=b.level))
    blocks += [Block("h2", "Accuracy"),
               Block("p", "Best int8 = the int8 build with the highest PSNR; deltas and fidelity are against that "
                          "run's own fp32 model. Runs are comparable only on the same dataset and protocol."),
               accuracy_summary(datas, labels), Block("h2", "Speed"), speed_summary(datas, labels)]
    return blocks


def render_compare(datas: list[ReportData], fmt: str = "html", labels: list[str] | None = None) -> str:
    """The compare page as ``"html"`` (self-contained) or ``"md"``."""
    blocks = compare_blocks(datas, labels)
    if fmt == "md":
        return md_page(blocks, lambda p: str(p))
    if fmt == "html":
        return html_page("vacc-deploy comparison", blocks)
    raise ValueError(f"fmt must be 'html' or 'md', got {fmt!r}")


def write_compare(datas: list[ReportData], folder: Path, labels: list[str] | None = None) -> tuple[Path, Path]:
    """Write ``compare.md`` and ``compare.html`` into ``folder`` (atomically)."""
    folder = Path(folder)
    md, page = folder / "compare.md", folder / "compare.html"
    atomic_write_text(md, render_compare(datas, "md", labels))
    atomic_write_text(page, render_compare(datas, "html", labels))
    return md, page
