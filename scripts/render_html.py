#!/usr/bin/env python3
"""Render an HTML report headless with Chromium to a full-page PNG, and fail on any error.

Usage: ``python scripts/render_html.py REPORT.html OUT.png [--width 1400]``

Exit codes: 0 rendered and clean; 1 a console error, an uncaught exception, a resource that failed
to load or an image that did not load (each is listed), or Chromium failed; 2 bad arguments or no
``/usr/bin/chromium``; when it is missing and the script runs as root on Debian, it installs Debian's
``chromium`` package with apt-get (``--no-install`` turns that off).

Method (two headless Chromium runs on a temporary copy of the page, no DevTools connection):

1. Check: a small ``<script>`` is injected as the first element of ``<head>`` (with a ``<base>``
   pointing at the original folder, so relative links resolve as before). It records
   ``window.onerror`` events, failed resource loads (``error`` events captured on ``window``: img,
   script, link), unhandled promise rejections and ``console.error`` calls; on ``load`` it checks
   every ``<img>`` for ``complete && naturalWidth > 0`` and measures the page height, and writes the
   verdict as JSON into ``document.title``. ``chromium --dump-dom --virtual-time-budget=...`` prints
   the DOM after loading; the verdict is read back from its ``<title>``. No verdict (the checker never
   ran) is a failure too.
2. Screenshot: ``chromium --screenshot=OUT.png --window-size=W,H`` with H the measured page height
   (capped at ``--max-height``), so the PNG holds the whole page.
"""

from __future__ import annotations

import argparse
import os
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
MARK = "RENDERCHECK "
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--mute-audio", "--disable-extensions"]
CHECKER = """<script>(function(){var errs=[];
window.addEventListener('error',function(e){var t=e.target;
 if(t&&t!==window&&t.tagName){errs.push('resource failed to load: <'+t.tagName.toLowerCase()+'> '+
  String(t.src||t.href||'').slice(0,120));}else{errs.push('uncaught error: '+(e.message||String(e.error)));}},true);
window.addEventListener('unhandledrejection',function(e){errs.push('unhandled rejection: '+String(e.reason));});
var ce=console.error;console.error=function(){errs.push('console.error: '+Array.prototype.map.call(arguments,String).join(' '));
 return ce.apply(console,arguments);};
window.addEventListener('load',function(){var im=document.images,bad=0;
 for(var i=0;i<im.length;i++){if(!(im[i].complete&&im[i].naturalWidth>0)){bad++;
  errs.push('image did not load: '+String(im[i].getAttribute('src')||'').slice(0,120));}}
 var h=Math.max(document.documentElement.scrollHeight,document.body?document.body.scrollHeight:0);
 document.title='RENDERCHECK '+JSON.stringify({errors:errs,height:h,images:im.length});});
})();</script>"""


def inject(page: str, base_dir: Path) -> str:
    """The page with the checker (and a <base> for relative links) as the first thing in <head>."""
    head = f'<base href="{html.escape(base_dir.resolve().as_uri())}/">{CHECKER}'
    for pattern in (r"<head\b[^>]*>", r"<html\b[^>]*>"):
        m = re.search(pattern, page, re.IGNORECASE)
        if m:
            extra = head if pattern.startswith("<head") else f"<head>{head}</head>"
            return page[:m.end()] + extra + page[m.end():]
    doctype = re.match(r"\s*<!doctype[^>]*>", page, re.IGNORECASE)
    cut = doctype.end() if doctype else 0
    return page[:cut] + head + page[cut:]


def chromium(args: list[str], profile: Path, timeout: float) -> subprocess.CompletedProcess:
    """Run headless Chromium with a fresh profile folder."""
    cmd = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def check(url: str, width: int, profile: Path, timeout: float) -> dict:
    """First pass: the checker's verdict ({errors, height, images}); errors when it never ran."""
    proc = chromium(["--dump-dom", "--virtual-time-budget=5000", f"--window-size={width},1000", url],
                    profile, timeout)
    m = re.search(r"<title>(.*?)</title>", proc.stdout, re.DOTALL)
    title = html.unescape(m.group(1)) if m else ""
    if not title.startswith(MARK):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"errors": [f"the page did not finish loading or the check did not run "
                           f"(chromium exit {proc.returncode}: {tail})"], "height": 0, "images": 0}
    return json.loads(title[len(MARK):])


def screenshot(url: str, out: Path, width: int, height: int, profile: Path, timeout: float) -> str | None:
    """Second pass: a PNG of ``width`` x ``height``; returns an error message or None."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    proc = chromium([f"--screenshot={out.resolve()}", f"--window-size={width},{height}",
                     "--virtual-time-budget=5000", url], profile, timeout)
    if not out.is_file() or not out.read_bytes().startswith(b"\x89PNG"):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return f"chromium wrote no screenshot (exit {proc.returncode}: {tail})"
    return None


def render(page_path: Path, out: Path, width: int, max_height: int, timeout: float) -> list[str]:
    """Check and screenshot ``page_path``; returns the list of problems (empty: clean)."""
    with tempfile.TemporaryDirectory(prefix="render_html.") as tmp:
        copy = Path(tmp) / "page.html"
        copy.write_text(inject(page_path.read_text(encoding="utf-8", errors="replace"), page_path.parent),
                        encoding="utf-8")
        verdict = check(copy.as_uri(), width, Path(tmp) / "profile1", timeout)
        errors = list(verdict["errors"])
        if errors:
            return errors
        height = min(max(int(verdict["height"]), 200), max_height)
        err = screenshot(copy.as_uri(), out, width, height, Path(tmp) / "profile2", timeout)
        print(f"{page_path}: clean ({verdict['images']} images loaded), page {width}x{verdict['height']} px"
              + (f" (cut at {max_height})" if verdict["height"] > max_height else "") + f" -> {out}")
        return [err] if err else []


def ensure_chromium() -> bool:
    """Install Debian's chromium when it is missing and we are root with apt-get; True if present."""
    if CHROMIUM.exists():
        return True
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return False
    print("render_html: installing Debian's chromium (apt-get)", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode != 0:
            return False
    return CHROMIUM.exists()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("html", type=Path, help="the HTML page")
    ap.add_argument("out", type=Path, help="the PNG to write")
    ap.add_argument("--width", type=int, default=1400, help="viewport width in px (default 1400)")
    ap.add_argument("--max-height", type=int, default=16000, help="longest screenshot in px (default 16000)")
    ap.add_argument("--timeout", type=float, default=90.0, help="seconds per Chromium run (default 90)")
    ap.add_argument("--no-install", action="store_true", help="do not install chromium when it is missing")
    args = ap.parse_args(argv)
    if not (CHROMIUM.exists() if args.no_install else ensure_chromium()):
        print(f"render_html: {CHROMIUM} not found; install it with `apt-get install -y chromium`", file=sys.stderr)
        return 2
    if not args.html.is_file():
        print(f"render_html: {args.html}: no such file", file=sys.stderr)
        return 2
    try:
        problems = render(args.html, args.out, args.width, args.max_height, args.timeout)
    except subprocess.TimeoutExpired:
        problems = [f"chromium did not finish within {args.timeout:.0f} s"]
    for p in problems:
        print(f"render_html: {args.html}: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
