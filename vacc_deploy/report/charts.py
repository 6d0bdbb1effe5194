"""Plots for reports (matplotlib, Agg backend: no display needed). Torch-free. Files are written
atomically (a temporary file in the same folder, then ``os.replace``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vacc_deploy.artifacts import atomic_path


def _label(r: dict[str, Any]) -> str:
    quant = f"\n{r['quant']}" if r.get("quant") else ""
    return f"{r['backend']}\n{r['precision']}{quant}"


def bar_images_per_s(results: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Bar plot of ``images_per_s`` per backend / precision (/ int8 method), one bar per result of a
    benchmark document (SPEC §6 ``results``). Writes a PNG to ``path`` atomically; returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(results) + 1.5), 3.6))
    try:
        values = [float(r["images_per_s"]) for r in results]
        bars = ax.bar(range(len(results)), values, color="#4c72b0")
        ax.set_xticks(range(len(results)), [_label(r) for r in results], fontsize=8)
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
        ax.set_ylabel("images/s (higher is better)")
        ax.set_title(title or "throughput")
        fig.tight_layout()
        _save(fig, path)
    finally:
        plt.close(fig)
    return path


def layer_error_plot(layers: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Per-layer SQNR (dB) of an int8 analysis (:mod:`vacc_deploy.pipeline.analysis` ``layers``), in
    graph order (sorted by Conv index, whatever order ``layers`` has): the layer quantized alone and
    with errors accumulated through the network, the legend outside the axes. Lower is worse. Writes a PNG to ``path`` atomically; returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def num(v: Any) -> float:
        return float("nan") if v == "inf" else float(v)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = sorted((r for r in layers if r.get("conv_index") is not None), key=lambda r: int(r["conv_index"]))
    labels = [str(r["conv_index"]) for r in rows]
    x = list(range(len(rows)))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.35 * len(rows) + 2.0), 4.0))
    try:
        ax.bar([i - 0.2 for i in x], [num(r["alone_sqnr_db"]) for r in rows], 0.4, label="layer alone")
        ax.bar([i + 0.2 for i in x], [num(r["accumulated_sqnr_db"]) for r in rows], 0.4, label="accumulated")
        ax.set_xticks(x, labels, fontsize=7)
        ax.set_xlabel("Conv index (graph order; vamc skip_conv_layers numbering)")
        ax.set_ylabel("SQNR dB (higher is better)")
        ax.set_title(title or "int8 error per layer")
        # outside the axes (below the axis label), so it never covers a bar
        ax.legend(fontsize=8, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
        fig.tight_layout()
        _save(fig, path)
    finally:
        plt.close(fig)
    return path


def _save(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
