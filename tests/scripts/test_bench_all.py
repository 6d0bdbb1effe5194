"""scripts/bench_all.py: incremental JSON and the generated block of docs/benchmarks.md."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench_all() -> Any:
    spec = importlib.util.spec_from_file_location("bench_all", REPO / "scripts" / "bench_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _doc(row: str, p50: float, command: str = "cmd") -> dict[str, Any]:
    result = {"backend": "onnxruntime", "precision": "fp32", "quant": None, "weights": "official",
              "latency_ms": {"p50": p50, "p90": p50 * 1.1}, "noise": {"rel_mad": 0.01}, "first_run_ms": p50 * 2,
              "images_per_s": 1e3 / p50, "megapixels_per_s": 1.0, "peak_rss_mb": 100.0, "gflops_per_s": 10.0,
              "cpu_probe_ms": {"before": 2.0, "after": 3.0}}
    return {"row": row, "input_shape": [1, 3, 8, 8], "results": [result],
            "bench_all": {"command": command, "date": "2026-01-01", "machine": "m"}}


def test_merge_replaces_measured_rows_and_keeps_the_others(bench_all: Any) -> None:
    old = {"rows": [_doc("a", 10.0), _doc("b", 20.0)], "failures": {"c": "boom"}}
    new = bench_all.merge(old, [_doc("b", 25.0), _doc("c", 30.0)], {"a": "later failure"}, ["c", "b", "a"])
    assert [d["row"] for d in new["rows"]] == ["c", "b", "a"]
    assert new["rows"][1]["results"][0]["latency_ms"]["p50"] == 25.0
    assert new["rows"][2]["results"][0]["latency_ms"]["p50"] == 10.0  # kept: its rerun failed
    assert new["failures"] == {"a": "later failure"}  # c measured now: its old failure is gone


def test_page_rewrites_only_the_generated_block(bench_all: Any) -> None:
    doc = bench_all.merge(None, [_doc("a", 10.0, "first"), _doc("b", 20.0, "second")], {}, ["a", "b", "z"])
    block = bench_all.table(doc, ["a", "b", "z"])
    existing = f"# Benchmarks\n\nhand note\n\n{bench_all.BEGIN}\nold table\n{bench_all.END}\n\n## Hand section\n"
    out = bench_all.page(existing, block)
    assert out.startswith("# Benchmarks\n\nhand note\n\n") and out.endswith("\n\n## Hand section\n")
    assert "old table" not in out and out.count(bench_all.BEGIN) == 1
    assert "| a | official | 1x3x8x8 | onnxruntime | fp32 | - | 10.0 |" in out
    assert "- a: 2026-01-01 on m: `first`" in out and "- z: not measured yet" in out
    assert bench_all.page(None, block) == "# Benchmarks\n\n" + block + "\n"


def test_int8_lines_show_their_calibration_cost(bench_all: Any) -> None:
    doc = _doc("a", 10.0)
    int8 = {**doc["results"][0], "precision": "int8", "quant": "percentile",
            "calibration": {"images": 4, "method": "percentile", "seconds_per_image": 1.234, "segments": 3}}
    old_int8 = {**int8, "calibration": {"images": 4, "method": "percentile", "seconds_per_image": None}}
    doc["results"] += [int8, old_int8]
    lines = [ln for ln in bench_all.table(bench_all.merge(None, [doc], {}, ["a"]), ["a"]).splitlines()
             if ln.startswith("| a |")]
    assert lines[0].endswith("| 2/3 | - |")  # fp32: no calibration
    assert lines[1].endswith("| 2/3 | 1.23 (4) |")
    assert lines[2].endswith("| 2/3 | - |")  # calibrated before seconds were recorded


def test_backfill_takes_the_single_cached_builds_calibration(bench_all: Any, tmp_path: Path) -> None:
    import json

    doc = _doc("a", 10.0)
    doc["results"].append({**doc["results"][0], "precision": "int8", "quant": "percentile"})
    doc["results"].append({**doc["results"][0], "precision": "int8", "quant": "kl_divergence"})
    record = {"images": 4, "method": "percentile", "seconds_per_image": 2.5, "segments": 3, "peak_rss_mb": 99.0}
    for key in ("k1",):
        (tmp_path / "a" / "build" / f"int8-percentile-{key}").mkdir(parents=True)
        (tmp_path / "a" / "build" / f"int8-percentile-{key}" / "manifest.json").write_text(
            json.dumps({"calibration": {**record, "ranges_extra": 1}}))
    for key in ("k2", "k3"):  # two candidate builds: ambiguous, left alone
        (tmp_path / "a" / "build" / f"int8-kl_divergence-{key}").mkdir(parents=True)
        (tmp_path / "a" / "build" / f"int8-kl_divergence-{key}" / "manifest.json").write_text(
            json.dumps({"calibration": record}))
    doc_all = {"rows": [doc], "failures": {}}
    assert bench_all.backfill_calibration(doc_all, tmp_path) == ["a/onnxruntime/percentile"]
    fp32, perc, kl = doc["results"]
    assert perc["calibration"] == record and "calibration" not in kl and "calibration" not in fp32
    assert bench_all.backfill_calibration(doc_all, tmp_path) == []  # already filled
