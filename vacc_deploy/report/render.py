"""Render a :class:`ReportData` to ``report.md`` (images as relative links into ``assets/``) and a
self-contained ``report.html`` (inline CSS, every image a ``data:image/png;base64`` URI, no
external fonts, scripts or links: it opens offline), and write the report folder atomically."""

from __future__ import annotations

import base64
import copy
import html
import re
import shutil
from pathlib import Path

from vacc_deploy.artifacts import atomic_write_bytes, atomic_write_text
from vacc_deploy.report.model import CROP_IMAGES, ReportData
from vacc_deploy.report.plots import benchmark_png
from vacc_deploy.report.sections import Block, num, report_blocks

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CROP_CAPTIONS = {"lr": "LR (nearest)", "fp32": "fp32", "int8": "int8", "hr": "HR", "heatmap": "|int8 - fp32|"}
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;
 background:#f4f5f7;color:#1d2330;line-height:1.45}
main{max-width:1280px;margin:0 auto;padding:24px 32px 48px;background:#fff;min-height:100vh}
h1{font-size:26px;margin:4px 0 12px}h2{font-size:20px;margin:32px 0 10px;padding-bottom:4px;
 border-bottom:2px solid #dde1e8}h3{font-size:16px;margin:20px 0 8px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:14px}
th,td{border:1px solid #d3d8e0;padding:5px 10px;text-align:left;vertical-align:top}
th{background:#e9edf3;font-weight:600}tr:nth-child(even) td{background:#f8f9fb}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.kv th:empty{display:none}table.kv td:first-child{font-weight:600;white-space:nowrap}
td{overflow-wrap:break-word;max-width:720px}
.banner{padding:14px 18px;margin:12px 0;border-radius:6px;font-size:19px;font-weight:700}
.banner.danger{background:#b3001b;color:#fff;border:4px solid #5c000e}
.banner.warn{background:#ffcc33;color:#3a2a00;border:3px solid #a67c00}
pre{background:#1f2430;color:#e6e6e6;padding:10px 12px;border-radius:4px;overflow-x:auto;font-size:12.5px;
 white-space:pre-wrap;word-break:break-all}
details summary{cursor:pointer;font-weight:600;margin:6px 0}
.crops{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-end;margin:6px 0 18px}
.crops figure{margin:0;text-align:center;font-size:12.5px}
.crops img.px{width:192px;height:192px;image-rendering:pixelated;border:1px solid #ccc}
.crops img.hm{height:220px}
img.plot{max-width:100%;border:1px solid #e0e0e0}figure{margin:8px 0 16px}figcaption{font-size:13px;color:#555}
.missing{padding:8px;border:2px dashed #b3001b;color:#b3001b;font-size:13px}
"""


def _is_num(cell: str) -> bool:
    return bool(re.fullmatch(r"[+-]?(\d+(\.\d+)?|inf|nan)|ref|-", cell.strip()))


def _bold_html(cell: str) -> str:
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(cell))


def data_uri(path: str | None) -> str | None:
    """``data:image/png;base64,...`` of a PNG file, or None when missing or not a PNG."""
    if not path or not Path(path).is_file():
        return None
    raw = Path(path).read_bytes()
    return "data:image/png;base64," + base64.b64encode(raw).decode("ascii") if raw.startswith(PNG_MAGIC) else None


def _img_html(path: str | None, alt: str, cls: str) -> str:
    uri = data_uri(path)
    if uri is None:
        return f'<div class="missing">image missing: {html.escape(str(path))}</div>'
    return f'<img class="{cls}" alt="{html.escape(alt)}" src="{uri}">'


def _table_html(b: Block) -> str:
    kv = all(not h for h in b.headers)
    head = "" if kv else "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in b.headers) + "</tr>"
    body = "".join("<tr>" + "".join(f'<td{" class=num" if _is_num(c) and not kv else ""}>{_bold_html(c)}</td>'
                                    for c in row) + "</tr>" for row in b.rows)
    return f'<table{" class=kv" if kv else ""}>{head}{body}</table>'


def _crops_html(b: Block) -> str:
    c = b.crop
    assert c is not None
    title = (f"{c.image} — {c.backend or ''} {c.quant or ''} int8, ΔPSNR {-(c.psnr_drop or 0):+.3f} dB, "
             f"max |int8 - fp32| {num(c.max_abs, 0)}, window (y, x, h, w) {tuple(c.window)}")
    figs = "".join(f"<figure>{_img_html(getattr(c, k), CROP_CAPTIONS[k], 'hm' if k == 'heatmap' else 'px')}"
                   f"<figcaption>{CROP_CAPTIONS[k]}</figcaption></figure>" for k in CROP_IMAGES)
    return f"<h3>{html.escape(title)}</h3><div class=crops>{figs}</div>"


def block_html(b: Block) -> str:
    """One block as HTML."""
    if b.kind in ("h1", "h2", "h3"):
        return f"<{b.kind}>{html.escape(b.text)}</{b.kind}>"
    if b.kind == "p":
        return f"<p>{_bold_html(b.text)}</p>"
    if b.kind == "banner":
        return f'<div class="banner {b.level}">{html.escape(b.text)}</div>'
    if b.kind == "table":
        return _table_html(b)
    if b.kind == "image":
        return f"<figure>{_img_html(b.path, b.text, 'plot')}<figcaption>{html.escape(b.text)}</figcaption></figure>"
    if b.kind == "crops":
        return _crops_html(b)
    if b.kind == "code":
        return f"<pre>{html.escape(b.text)}</pre>"
    if b.kind == "details":
        return f"<details><summary>{html.escape(b.level)}</summary><pre>{html.escape(b.text)}</pre></details>"
    raise ValueError(f"unknown block kind {b.kind!r}")


def html_page(title: str, blocks: list[Block]) -> str:
    """A complete, self-contained HTML page."""
    body = "\n".join(block_html(b) for b in blocks)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body><main>\n{body}\n</main></body></html>\n")


def _md_cell(cell: str) -> str:
    return cell.replace("|", "\\|").replace("\n", " ")


def block_md(b: Block, link: callable) -> str:
    """One block as Markdown; ``link(path)`` gives an image's relative link."""
    if b.kind in ("h1", "h2", "h3"):
        return "#" * int(b.kind[1]) + " " + b.text
    if b.kind == "p":
        return b.text
    if b.kind == "banner":
        return f"> **{'⚠ ' if b.level else ''}{b.text}**"
    if b.kind == "table":
        head = [h or " " for h in b.headers]
        lines = ["| " + " | ".join(_md_cell(h) for h in head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        return "\n".join(lines + ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in b.rows])
    if b.kind == "image":
        return f"![{b.text}]({link(b.path)})"
    if b.kind == "crops":
        c = b.crop
        cells = [f"![{_md_cell(CROP_CAPTIONS[k])}]({link(getattr(c, k))})" for k in CROP_IMAGES]
        title = f"**{c.image}** ({c.backend or ''} {c.quant or ''} int8, ΔPSNR {-(c.psnr_drop or 0):+.3f} dB)"
        return title + "\n\n| " + " | ".join(map(_md_cell, CROP_CAPTIONS.values())) + " |\n|" + "---|" * 5 + "\n| " + " | ".join(cells) + " |"
    if b.kind in ("code", "details"):
        pre = f"{b.level}:\n\n" if b.kind == "details" else ""
        return f"{pre}```{b.lang}\n{b.text.rstrip()}\n```"
    raise ValueError(f"unknown block kind {b.kind!r}")


def md_page(blocks: list[Block], link: callable) -> str:
    """A complete Markdown document."""
    return "\n\n".join(block_md(b, link) for b in blocks) + "\n"


def render_markdown(data: ReportData, assets_dir: Path) -> str:
    """Markdown; images are links ``<assets_dir name>/<file name>`` (write them there first)."""
    name = Path(assets_dir).name
    return md_page(report_blocks(data), lambda p: f"{name}/{Path(p).name}" if p else "missing.png")


def render_html(data: ReportData) -> str:
    """Self-contained HTML (images read from their paths and inlined)."""
    return html_page(f"vacc-deploy report: {data.row}", report_blocks(data))


def _into_assets(data: ReportData, assets: Path) -> None:
    """Copy every image into ``assets`` (unless already there) and point ``data`` at the copies."""
    def move(p: str) -> str:
        src = Path(p)
        dst = assets / src.name
        if src.is_file() and src.resolve() != dst.resolve():
            shutil.copyfile(src, dst)
        return str(dst)
    data.map_images(move)


def write_report(data: ReportData, folder: Path) -> tuple[Path, Path]:
    """Write ``report.md``, ``assets/*.png``, ``report.html`` and ``report.json`` into ``folder``
    (each file atomically). A benchmark plot is drawn when there is a benchmark but no plot.
    ``data`` is not modified. Returns (md path, html path)."""
    folder = Path(folder)
    assets = folder / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    data = copy.deepcopy(data)
    if data.benchmark and not data.benchmark_plot:
        atomic_write_bytes(assets / "benchmark.png", benchmark_png(data.benchmark))
        data.benchmark_plot = str(assets / "benchmark.png")
    _into_assets(data, assets)
    md_path, html_path = folder / "report.md", folder / "report.html"
    atomic_write_text(md_path, render_markdown(data, assets))
    atomic_write_text(html_path, render_html(data))
    rel = copy.deepcopy(data)
    rel.map_images(lambda p: f"assets/{Path(p).name}")
    rel.save(folder / "report.json")
    return md_path, html_path
