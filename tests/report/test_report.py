"""Report rendering: contract round trip, self-contained HTML, seeds' layout, banners, compare page,
the CLI, and (when /usr/bin/chromium exists) a headless render that fails on broken pages."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.report.sample import sample_report
from vacc_deploy.cli import main
from vacc_deploy.errors import UsageError
from vacc_deploy.report.compare import render_compare
from vacc_deploy.report.crops import crop_pngs, crop_window, worst_images
from vacc_deploy.report.model import ReportData
from vacc_deploy.report.render import render_html, write_report
from vacc_deploy.report.sections import HOUSE_BANNER, SYNTHETIC_BANNER

REPO = Path(__file__).resolve().parents[2]
RENDER = REPO / "scripts" / "render_html.py"
CHROMIUM = Path("/usr/bin/chromium")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("report")
    write_report(sample_report(base / "src"), base / "out")
    return base / "out"


def _imgs(page: str) -> list[str]:
    return re.findall(r"<img\b[^>]*\bsrc=\"([^\"]*)\"", page)


def test_html_is_self_contained(report_dir: Path) -> None:
    page = (report_dir / "report.html").read_text()
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", page, re.IGNORECASE)
    assert "<link" not in page and "@import" not in page and "url(" not in page
    srcs = _imgs(page)
    assert len(srcs) == 1 + 2 * 5  # benchmark plot, 2 images x (LR, fp32, int8, HR, heat map)
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)


def test_markdown_seed_layout_and_assets(report_dir: Path) -> None:
    md = (report_dir / "report.md").read_text()
    assert "| Models | Flops(G) | Params(M) | PSNR(dB) | SSIM | Shape |" in md
    assert "| lesrcnn_x2 | 44.459 | 0.626 | 34.300 | 0.9500 | 3x128x128 |" in md
    assert "| lesrcnn_x2 **ort percentile int8** | - | - | 32.800 |" in md
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) == 11 and all(l.startswith("assets/") and (report_dir / l).is_file() for l in links)
    assert SYNTHETIC_BANNER in md and "```yaml" in md


def test_synthetic_and_house_banners(tmp_path: Path) -> None:
    data = sample_report(tmp_path / "src")
    assert SYNTHETIC_BANNER in render_html(data)
    data.provenance, data.weights = "house", "house weights"
    page = render_html(data)
    assert SYNTHETIC_BANNER not in page and HOUSE_BANNER in page
    data.provenance = "official"
    assert HOUSE_BANNER not in render_html(data) and 'class="banner' not in render_html(data)


def test_json_round_trip_and_rerender(report_dir: Path, tmp_path: Path) -> None:
    data = ReportData.load(report_dir / "report.json")
    assert data.crops[0].image == "bird.png" and data.builds[2].vamc_yaml
    assert Path(data.benchmark_plot).is_file()
    assert main(["report", str(report_dir), "--output", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "report.html").read_text() == (report_dir / "report.html").read_text()


def test_bad_report_json(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text('{"row": "x", "colour": 1}')
    with pytest.raises(UsageError, match="unknown key 'colour'"):
        ReportData.load(tmp_path / "report.json")
    assert main(["report", str(tmp_path)]) == 2
    with pytest.raises(UsageError, match="provenance"):
        ReportData(row="x", provenance="bogus")


def test_compare_two_reports(report_dir: Path, tmp_path: Path) -> None:
    a = ReportData.load(report_dir / "report.json")
    b = sample_report(tmp_path / "src", row="edsr_x2", provenance="official")
    page = render_compare([a, b], "html")
    assert "lesrcnn_x2" in page and "edsr_x2" in page and SYNTHETIC_BANNER in page and not _imgs(page)
    md = render_compare([a, b], "md")
    assert "| lesrcnn_x2 | lesrcnn_x2 | synthetic | Set5 / standard | 3x128x128 | 34.300 |" in md
    assert "onnxruntime int8 percentile (img/s)" in md
    assert main(["report", "--compare", str(report_dir), str(report_dir), "--output", str(tmp_path / "c")]) == 0
    assert (tmp_path / "c" / "compare.html").is_file() and (tmp_path / "c" / "compare.md").is_file()


def test_worst_images_and_crop_window() -> None:
    ev = sample_report.__globals__["_eval"]("r")
    worst = worst_images(ev, n=1)
    assert worst[0]["image"] == "bird.png" and worst[0]["quant"] == "kl_divergence"
    a = np.zeros((128, 160, 3), np.uint8)
    b = a.copy()
    b[40:80, 60:100] = 12
    assert crop_window(a, b, 96, 2) == (12, 32, 96)
    pngs, info = crop_pngs(a[::2, ::2], a, a, b, 64)
    assert info["max_abs"] == 12 and info["window"][2:] == [64, 64]
    assert all(v.startswith(PNG) for v in pngs.values())


needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(),
                                    reason="/usr/bin/chromium not installed (apt-get install -y chromium)")


def _render(page: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RENDER), str(page), str(out), "--width", "1200", "--no-install"],
                          capture_output=True, text=True, timeout=240)


@needs_chromium
def test_render_html_clean_report(report_dir: Path, tmp_path: Path) -> None:
    proc = _render(report_dir / "report.html", tmp_path / "shot.png")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "shot.png").read_bytes().startswith(PNG)


@needs_chromium
@pytest.mark.parametrize("body", ['<img src="missing.png">', "<script>throw new Error('x')</script>"])
def test_render_html_fails_on_broken_page(tmp_path: Path, body: str) -> None:
    page = tmp_path / "bad.html"
    page.write_text(f"<!DOCTYPE html><html><head><title>t</title></head><body><p>hi</p>{body}</body></html>")
    proc = _render(page, tmp_path / "bad.png")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "render_html:" in proc.stderr
