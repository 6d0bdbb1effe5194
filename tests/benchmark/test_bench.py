"""Benchmark stage: measure() statistics, FLOP counting on hand-built graphs, the benchmark command's
SPEC §6 JSON and its plot. Shapes and iteration counts are tiny: no real measurement happens here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from vacc_deploy.benchmark.measure import count_model_calls, latency_stats, measure, model_flops
from vacc_deploy.cli import main
from vacc_deploy.spec import ModelSpec


class CountingSession:
    """A fake x2 session that counts its calls."""

    input_shape = (1, 3, 8, 8)

    def __init__(self) -> None:
        self.calls = 0

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        return np.repeat(np.repeat(batch, 2, axis=2), 2, axis=3)


def test_measure_fields_and_counts() -> None:
    sess = CountingSession()
    r = measure(sess, np.zeros(sess.input_shape, np.float32), iters=5, warmup=2)
    assert sess.calls == 1 + 2 + 5  # first run + warm-up + timed
    lat = r["latency_ms"]
    assert r["iters"] == 5 and r["noise"]["n"] == 5
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["max"]
    assert r["first_run_ms"] > 0 and r["peak_rss_mb"] > 0
    assert r["output_shape"] == [1, 3, 16, 16]
    assert r["images_per_s"] == pytest.approx(1e3 / lat["p50"])
    assert r["megapixels_per_s"] == pytest.approx(256 / 1e6 * 1e3 / lat["p50"])


def test_latency_stats_noise() -> None:
    s = latency_stats([10.0, 10.0, 10.0, 12.0, 8.0])
    assert s["latency_ms"]["p50"] == 10.0 and s["noise"]["rel_mad"] == 0.0
    assert s["noise"]["rel_iqr"] == pytest.approx(0.0)


def _save(tmp_path: Path, nodes, inputs, outputs, inits) -> Path:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits)
    path = tmp_path / "m.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what ONNX Runtime loads
    onnx.save(model, str(path))
    return path


def test_model_flops_conv_by_hand(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w1 = numpy_helper.from_array(np.zeros((4, 3, 3, 3), np.float32), "w1")
    w2 = numpy_helper.from_array(np.zeros((4, 2, 3, 3), np.float32), "w2")  # groups=2: Cin/g = 2
    nodes = [helper.make_node("Conv", ["x", "w1"], ["h"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["h", "w2"], ["y"], group=2, strides=[2, 2])]  # 8x8 -> 3x3 (no pad)
    path = _save(tmp_path, nodes, [x], [y], [w1, w2])
    macs = 4 * 8 * 8 * (3 * 3 * 3) + 4 * 3 * 3 * (2 * 3 * 3)
    assert model_flops(path) == 2 * macs


def test_model_flops_matmul_and_convtranspose(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    wt = numpy_helper.from_array(np.zeros((2, 3, 2, 2), np.float32), "wt")  # ConvTranspose (Cin, Cout, k, k)
    m = numpy_helper.from_array(np.zeros((8, 5), np.float32), "m")
    nodes = [helper.make_node("ConvTranspose", ["x", "wt"], ["h"], strides=[2, 2]),  # -> 1x3x8x8
             helper.make_node("MatMul", ["h", "m"], ["y"])]  # (1,3,8,8) x (8,5) -> (1,3,8,5)
    path = _save(tmp_path, nodes, [x], [y], [wt, m])
    assert model_flops(path) == 2 * (2 * 4 * 4 * 3 * 2 * 2 + 3 * 8 * 5 * 8)


def test_count_model_calls_matches_tiling() -> None:
    from vacc_deploy.imaging.tiling import tiled_apply

    spec = ModelSpec(scale=2, size_multiple=1)
    assert count_model_calls((100, 40), spec, None, 16) == (1, 1)
    sess = CountingSession()
    tiled_apply(np.zeros((3, 100, 40), np.float32), sess.run, (8, 8), 2, overlap=4)
    assert count_model_calls((100, 40), spec, (1, 3, 8, 8), 4) == (sess.calls, sess.calls)
    assert count_model_calls((100, 40), spec, (4, 3, 8, 8), 4) == (sess.calls, -(-sess.calls // 4))


def test_end_to_end_sums_over_images() -> None:
    from vacc_deploy.benchmark.measure import end_to_end
    from vacc_deploy.evaluation.upscaler import Upscaler

    sess = CountingSession()
    up = Upscaler(sess, ModelSpec(scale=2, size_multiple=1), overlap=2)
    images = [np.zeros((20, 12, 3), np.float32), np.zeros((8, 8, 3), np.float32)]
    one = end_to_end(up, images[:1], model_p50_ms=1.0, repeats=2)
    both = end_to_end(up, images, model_p50_ms=1.0, repeats=2)
    assert one["lr_hw"] == [20, 12] and "lr_hw" not in both and both["images"] == 2
    calls = [count_model_calls(im.shape[:2], up.spec, sess.input_shape, 2)[1] for im in images]
    assert both["model_calls"] == sum(calls) and both["tiling_overhead"] == pytest.approx(both["ms"] / sum(calls))
    assert both["megapixels_per_s"] == pytest.approx((20 * 12 + 8 * 8) * 4 / 1e6 / (both["ms"] / 1e3))


def test_end_to_end_images_of_an_evaluation_folder(tmp_path: Path) -> None:
    import cv2

    from vacc_deploy.benchmark.worker import end_to_end_images

    srf = tmp_path / "Set2" / "image_SRF_2"
    srf.mkdir(parents=True)
    for i in (1, 2):
        cv2.imwrite(str(srf / f"img_00{i}_SRF_2_HR.png"), np.zeros((8, 8, 3), np.uint8))
        cv2.imwrite(str(srf / f"img_00{i}_SRF_2_LR.png"), np.zeros((4, 4, 3), np.uint8))
    assert [p.name for p in end_to_end_images(tmp_path / "Set2", 2)] == ["img_001_SRF_2_LR.png", "img_002_SRF_2_LR.png"]
    assert len(end_to_end_images(srf, 3)) == 4  # no pairs at x3: every image in the folder
    assert end_to_end_images(srf / "img_001_SRF_2_LR.png", 2) == [srf / "img_001_SRF_2_LR.png"]


@pytest.fixture(scope="module")
def bench_json(tmp_path_factory) -> tuple[dict, Path]:
    tmp = tmp_path_factory.mktemp("bench")
    out, plot = tmp / "out.json", tmp / "plot.png"
    code = main(["benchmark", "lesrcnn_x2", "--weights", "synthetic", "--shape", "1x3x32x32",
                 "--backends", "torch,onnxruntime", "--precisions", "fp32,fp16", "--iters", "3", "--warmup", "1",
                 "--json", str(out), "--plot", str(plot), "--workdir", str(tmp / "work")])
    assert code == 0
    return json.loads(out.read_text()), plot


def test_benchmark_cli_json_has_spec_fields(bench_json) -> None:
    doc, _ = bench_json
    assert doc["row"] == "lesrcnn_x2" and doc["input_shape"] == [1, 3, 32, 32]
    assert {"platform", "cpu_count"} <= set(doc["machine"]) and "onnxruntime" in doc["versions"]
    got = [(r["backend"], r["precision"]) for r in doc["results"]]
    assert got == [("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "fp16")]
    flops = {r["flops"] for r in doc["results"]}
    assert len(flops) == 1 and flops.pop() > 0  # torch uses the fp32 export's count; fp16 is the same graph
    for r in doc["results"]:
        assert {"p50", "p90", "mean"} <= set(r["latency_ms"]) and r["latency_ms"]["p50"] <= r["latency_ms"]["p90"]
        for key in ("first_run_ms", "images_per_s", "megapixels_per_s", "peak_rss_mb", "gflops_per_s"):
            assert r[key] > 0, key
        assert "quant" in r and "rel_mad" in r["noise"] and r["iters"] == 3
        assert r["cpu_probe_ms"]["before"] > 0 and r["cpu_probe_ms"]["after"] > 0
        assert r["torch_imported"] == (r["backend"] == "torch")  # the ORT path never imports torch


def test_benchmark_plot_is_png(bench_json) -> None:
    _, plot = bench_json
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 1000


def test_benchmark_int8_line_records_its_calibration_cost(tmp_path: Path, capsys) -> None:
    from tests.helpers import noise_images

    (tmp_path / "calib").mkdir()
    calib = noise_images(tmp_path / "calib", n=2)
    out = tmp_path / "out.json"
    code = main(["benchmark", "lesrcnn_x2", "--weights", "synthetic", "--shape", "1x3x32x32", "--precisions", "int8",
                 "--quant", "max", "--calib-images", str(calib), "--num", "3", "--iters", "1", "--warmup", "0",
                 "--json", str(out), "--workdir", str(tmp_path / "work")])
    assert code == 0
    (r,) = json.loads(out.read_text())["results"]
    c = r["calibration"]
    assert (r["precision"], c["images"], c["method"]) == ("int8", 3, "max")
    assert c["seconds_per_image"] > 0 and c["segments"] >= 1
    assert "calibration of onnxruntime int8 max: 3 samples," in capsys.readouterr().out


def test_benchmark_bad_backend_is_usage_error(capsys) -> None:
    assert main(["benchmark", "lesrcnn_x2", "--backends", "tensorrt"]) == 2
    assert "--backends" in capsys.readouterr().err


def test_worker_peak_rss_is_its_own(tmp_path: Path) -> None:
    """A fresh worker's peak RSS must not include its (bigger) parent's memory."""
    from vacc_deploy.benchmark.measure import peak_rss_mb
    from vacc_deploy.benchmark.worker import BenchJob, run_job

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    w = numpy_helper.from_array(np.zeros((3, 3, 1, 1), np.float32), "w")
    path = _save(tmp_path, [helper.make_node("Conv", ["x", "w"], ["y"])], [x], [y], [w])
    ballast = np.ones(400 * 2**20 // 8)  # 400 MB resident in the parent
    assert peak_rss_mb() > 400
    job = BenchJob(backend="onnxruntime", row="lesrcnn_x2", input_shape=(1, 3, 8, 8),
                   spec_json=ModelSpec(scale=1).to_json(), onnx_path=str(path), iters=2, warmup=0)
    r = run_job(job)
    assert r["peak_rss_mb"] < 400 and not r["torch_imported"], r["peak_rss_mb"]
    del ballast


def test_bench_modules_do_not_import_torch() -> None:
    import subprocess
    import sys

    from tests.conftest import REPO

    code = ("import sys, vacc_deploy.benchmark.measure, vacc_deploy.benchmark.worker, vacc_deploy.report.charts, "
            "vacc_deploy.cli.benchmark_cmd; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(REPO)})
    assert out.stdout.strip() == "False"
