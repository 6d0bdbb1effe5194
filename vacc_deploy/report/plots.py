"""Figures for the report, drawn with matplotlib's object API (no pyplot, no global backend
switch) and returned as PNG bytes."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _png(fig: Figure, dpi: int = 100) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def heatmap_png(diff: np.ndarray, title: str = "|int8 - fp32|") -> bytes:
    """A heat map (colormap 'inferno') of a 2-D array of absolute differences (uint8 levels), with a
    colour bar and the maximum value labelled (in the title and at its position)."""
    diff = np.asarray(diff, dtype=np.float32)
    vmax = float(diff.max()) if diff.size else 0.0
    fig = Figure(figsize=(3.2, 2.8))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(diff, cmap="inferno", vmin=0.0, vmax=max(vmax, 1.0), interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if diff.size:
        y, x = np.unravel_index(int(np.argmax(diff)), diff.shape)
        ax.plot([x], [y], marker="o", markersize=7, markerfacecolor="none", markeredgecolor="cyan")
    ax.set_title(f"{title}  max = {vmax:.0f}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return _png(fig)


def result_label(r: dict[str, Any]) -> str:
    """"backend precision quant" for a benchmark or eval result (quant left out when absent)."""
    parts = [str(r.get("backend") or ""), str(r.get("label") or r.get("precision") or "")]
    if r.get("quant"):
        parts.append(str(r["quant"]))
    return " ".join(p for p in parts if p)


def benchmark_png(benchmark: dict[str, Any]) -> bytes:
    """Horizontal bars of images per second (and p50 latency in the labels) per benchmark result."""
    results = benchmark.get("results") or []
    labels = [result_label(r) for r in results]
    ips = [float(r.get("images_per_s") or 0.0) for r in results]
    fig = Figure(figsize=(7.0, 0.5 + 0.45 * max(len(results), 1)))
    ax = fig.add_subplot(1, 1, 1)
    bars = ax.barh(range(len(results)), ips, color="#3b6ea8")
    ax.set_yticks(range(len(results)), labels, fontsize=9)
    ax.invert_yaxis()
    for bar, r in zip(bars, results):
        p50 = (r.get("latency_ms") or {}).get("p50")
        text = f" {bar.get_width():.1f} img/s" + (f"  (p50 {float(p50):.1f} ms)" if p50 is not None else "")
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, text, va="center", fontsize=8)
    ax.set_xlabel("images per second (higher is better)")
    ax.set_xlim(0, max(ips + [1.0]) * 1.45)
    shape = benchmark.get("input_shape")
    ax.set_title(f"{benchmark.get('row', '')} benchmark" + (f", input {_shape(shape)}" if shape else ""),
                 fontsize=10)
    return _png(fig)


def _shape(shape: Any) -> str:
    return "x".join(str(s) for s in shape) if isinstance(shape, (list, tuple)) else str(shape)
