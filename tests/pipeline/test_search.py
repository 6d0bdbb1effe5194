"""int8 layer analysis and the --target-drop search through the CLI (synthetic lesrcnn_x2 at
1x3x32x32, random images), and the search's growth and choice rules."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest

from vacc_deploy.cli import main
from vacc_deploy.pipeline.search import (
    FIDELITY_MARGIN,
    MARGIN,
    SPEED_GAIN,
    Targets,
    Trial,
    choose,
    fast_variants,
    grow,
)

ARGS = ["--weights", "synthetic", "--shape", "1x3x32x32", "--num", "4"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    imgs = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for i in range(3):
        img = cv2.GaussianBlur(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8), (5, 5), 0)
        cv2.imwrite(str(imgs / f"{i}.png"), img)
    return tmp_path_factory.mktemp("work"), imgs


def _t(meets: bool, float_layers: list[str], drop_db: float, speedup: float = 1.0, variant: dict | None = None,
       k: int | None = None) -> Trial:
    """A trial with only the fields the growth and choice rules read set meaningfully."""
    return Trial(quant="percentile", per_channel=True, skip_layers=(), numerics="onnxruntime", weight_scale="max",
                 int8_ops="compute", reduce_range="off", weight_bits=8, float_layers=tuple(float_layers),
                 float_layer_indices=(), psnr=30.0 + drop_db, drop_db=drop_db, ms=10.0 / speedup, speedup=speedup,
                 meets=meets, variant=variant, k=k)


def test_grow_finds_the_smallest_k() -> None:
    for need in (1, 2, 3, 5, 7, 9):
        tried: list[int] = []

        def try_k(k: int) -> Trial:
            tried.append(k)
            return _t(k >= need, ["x"] * k, -0.1, k=k)

        grow(try_k, 9)
        assert need in tried and (need == 1 or need - 1 in tried), (need, tried)
    tried = []
    grow(lambda k: tried.append(k) or _t(False, [], -0.1), 6)
    assert tried == [1, 2, 4, 6]


def test_choose_prefers_fewest_float_layers_then_drop() -> None:
    t = [_t(True, ["a", "b"], -0.01), _t(True, ["a"], -0.05), _t(False, [], -0.5, speedup=3.0)]
    assert choose(t) is t[1]
    assert choose([t[2], _t(False, ["x"], -0.2)]).drop_db == -0.2


def test_choose_takes_a_clearly_faster_trial_that_meets_the_target() -> None:
    first = _t(True, ["a"], -0.01)
    noise = _t(True, ["a"], -0.02, speedup=SPEED_GAIN * 0.99)
    fast = _t(True, ["a", "b"], -0.03, speedup=1.6)
    too_lossy = _t(False, ["a"], -0.5, speedup=3.0)
    assert choose([first, noise, too_lossy]) is first
    assert choose([first, noise, fast, too_lossy]) is fast
    # a faster build that happens to score better is no anchor: the fastest one meeting the target wins
    lucky = _t(True, ["a"], +0.02, speedup=1.3, variant={})
    fastest = _t(True, ["a"], -0.01, speedup=1.46, variant={})
    assert choose([first, lucky, fastest]) is fastest
    assert choose([dataclasses.replace(first, meets=False), lucky, fastest]) is lucky  # 1.46 < 1.15 x 1.3
    # the vacc emulation's speed is not the card's: fewest float layers win however fast a trial ran
    vacc = [dataclasses.replace(t, numerics="vacc") for t in (first, fast)]
    assert choose(vacc) is vacc[0]


def test_targets_drop_fidelity_and_both() -> None:
    """A drop target within MARGIN x it, a fidelity target at least FIDELITY_MARGIN above it, both
    together; with a reference PSNR the predicted drop is judged, without margin."""
    drop = Targets(0.1)
    assert drop.meets(-MARGIN * 0.1) and not drop.meets(-MARGIN * 0.1 - 1e-6, 99.0)
    fid = Targets(fidelity=40.0)
    assert fid.meets(-5.0, 40.0 + FIDELITY_MARGIN) and not fid.meets(0.0, 40.0 + FIDELITY_MARGIN - 1e-6)
    assert not fid.meets(0.0, None)
    both = Targets(0.1, 40.0)
    assert both.meets(-0.01, 41.0) and not both.meets(-0.2, 41.0) and not both.meets(-0.01, 40.0)
    ref = Targets(0.1, reference_psnr=38.0)
    assert ref.meets(-0.5, None, -0.1) and not ref.meets(0.0, None, -0.1001) and not ref.meets(0.0)


def test_drop_at_psnr_predicts_from_the_mse_increase() -> None:
    """Two images: MSE 1 -> 1.2 and 4 -> 4.2, noise 0.2; at a reference MSE of 2 the drop is
    -10 log10(1.1)."""
    import math

    from vacc_deploy.evaluation.protocols import drop_at_psnr

    def p(mse: float) -> float:
        return 10 * math.log10(255.0**2 / mse)

    fp32, int8 = {"a": p(1.0), "b": p(4.0), "c": p(9.0)}, {"a": p(1.2), "b": p(4.2)}
    assert math.isclose(drop_at_psnr(fp32, int8, p(2.0)), -10 * math.log10(1.1), rel_tol=1e-9)
    assert drop_at_psnr(fp32, {"a": p(0.9), "b": p(3.9)}, p(2.0)) > 0  # int8 scored better: a gain
    with pytest.raises(ValueError):
        drop_at_psnr(fp32, {"z": 30.0}, 30.0)


def test_choose_without_a_met_fidelity_target_keeps_the_highest_fidelity() -> None:
    a = dataclasses.replace(_t(False, [], -0.01), fidelity_db=38.0)
    b = dataclasses.replace(_t(False, ["x"], -0.05), fidelity_db=39.5)
    assert choose([a, b]) is b
    assert b.to_dict()["fidelity_db"] == 39.5 and "fidelity_db" not in _t(False, [], -0.1).to_dict()


def test_trial_json_entry_keeps_the_search_format() -> None:
    """to_dict is the cached search JSON's trial entry: lists, and the growth/refine/variant tags
    only where set (cached results of earlier runs read the same)."""
    plain = _t(True, ["conv_0"], -0.01).to_dict()
    assert plain["float_layers"] == ["conv_0"] and plain["skip_layers"] == [] and plain["meets"] is True
    assert not {"k", "refine", "variant"} & set(plain)
    assert list(plain)[:3] == ["quant", "per_channel", "skip_layers"]
    tagged = dataclasses.replace(_t(False, [], -0.2, variant={"int8_ops": "all"}), k=2, refine=True).to_dict()
    assert (tagged["k"], tagged["refine"], tagged["variant"]) == (2, True, {"int8_ops": "all"})
    assert json.loads(json.dumps(tagged)) == tagged


@pytest.mark.parametrize("vnni_missing", [True, False])
def test_fast_variants(monkeypatch, vnni_missing: bool) -> None:
    from vacc_deploy import machine
    from vacc_deploy.backends import BuildOptions

    monkeypatch.setattr(machine, "x86_without_vnni", lambda: vnni_missing)
    got = fast_variants(BuildOptions(precision="int8"))
    if vnni_missing:
        assert got == [{"int8_ops": "compute", "reduce_range": "on"}, {"int8_ops": "all", "reduce_range": "off"},
                       {"int8_ops": "all", "reduce_range": "on"}]
    else:
        assert got == [{"int8_ops": "all", "reduce_range": "off"}]
    assert fast_variants(BuildOptions(precision="int8", int8_ops="all", reduce_range="on")) == []


def test_analyze_prints_sorted_layers_and_writes_plot(env, capsys, tmp_path) -> None:
    work, imgs = env
    rc = main(["analyze", "lesrcnn_x2", *ARGS, "--calib-images", str(imgs), "--quant", "max",
               "--workdir", str(work), "--json", str(tmp_path / "a.json"), "--plot", str(tmp_path / "a.png")])
    out = capsys.readouterr().out
    assert rc == 0 and "network output: SQNR" in out and "alone SQNR" in out
    data = json.loads((tmp_path / "a.json").read_text())
    convs = [r for r in data["layers"] if r["conv_index"] is not None]
    assert len(convs) == 22 and data["images"] == 4  # 26 convs, the 4 edge convs stay float
    assert (tmp_path / "a.png").stat().st_size > 1000
    alone = [float(r["alone_sqnr_db"]) for r in convs]
    ranks = [int(line.split()[1]) for line in out.splitlines() if line[:4].strip().isdigit()]
    assert [alone[[r["conv_index"] for r in convs].index(i)] for i in ranks] == sorted(alone)
    assert main(["analyze", "lesrcnn_x2", *ARGS, "--calib-images", str(imgs), "--quant", "max",
                 "--workdir", str(work)]) == 0
    assert "(reused)" in capsys.readouterr().out


def test_target_drop_search_writes_best_and_is_reused(env, capsys) -> None:
    work, imgs = env
    cmd = ["build", "lesrcnn_x2", *ARGS, "--precision", "int8", "--calib-images", str(imgs),
           "--target-drop", "0", "--max-float-layers", "2", "--workdir", str(work)]
    assert main(cmd) == 0
    out = capsys.readouterr().out
    assert "int8 search for a PSNR drop within 0.0 dB" in out and "float layers" in out
    search = json.loads(next((work / "lesrcnn_x2" / "search").glob("*.json")).read_text())
    assert len(search["trials"]) >= 4 and search["chosen"] in search["trials"]
    assert all(len(t["float_layers"]) <= 4 + 2 for t in search["trials"])
    builds = {(t["int8_ops"], t["weight_bits"]) for t in search["trials"]}
    assert ("all", 8) in builds  # the faster builds of the choice were tried
    assert f"{search['chosen']['weight_bits']}-bit {search['chosen']['int8_ops']}" in out
    chosen = search["chosen"]
    assert "float    " in out and str(chosen["float_layer_indices"]) in out
    assert main(cmd) == 0  # the search is cached, the build reused
    assert "reused (inputs unchanged)" in capsys.readouterr().out
    assert len(list((work / "lesrcnn_x2" / "search").glob("*.json"))) == 1


def test_target_drop_reaches_the_vacc_yaml(env, capsys, monkeypatch) -> None:
    work, imgs = env
    monkeypatch.setenv("PATH", "/nonexistent")
    cmd = ["build", "lesrcnn_x2", *ARGS, "--precision", "int8", "--calib-images", str(imgs),
           "--target-drop", "0", "--max-float-layers", "2", "--workdir", str(work), "--backend", "auto"]
    assert main(cmd) == 0
    search = json.loads(next((work / "lesrcnn_x2" / "search").glob("*.json")).read_text())
    assert f"skip_conv_layers {search['chosen']['float_layer_indices']}" in capsys.readouterr().out


def test_vacc_target_drop_searches_only_vamc_settings_and_writes_them_to_the_yaml(env, capsys, monkeypatch) -> None:
    import yaml

    work, imgs = env
    monkeypatch.setenv("PATH", "/nonexistent")  # no vamc: the trials and the final build are emulated
    cmd = ["build", "lesrcnn_x2", *ARGS, "--precision", "int8", "--calib-images", str(imgs), "--int8-edges",
           "--target-drop", "0", "--max-float-layers", "2", "--workdir", str(work / "vacc"), "--backend", "vacc"]
    assert main(cmd) == 0
    out = capsys.readouterr().out
    search = json.loads(next((work / "vacc" / "lesrcnn_x2" / "search").glob("*.json")).read_text())
    trials = search["trials"]
    assert all(t["numerics"] == "vacc" and "variant" not in t for t in trials)  # no ORT-only options
    assert {(t["quant"], t["per_channel"], t["weight_scale"]) for t in trials[:8]} == {
        (m, pc, ws) for m in ("percentile", "kl_divergence") for pc in (True, False) for ws in ("max", "power2")}
    assert all(len(t["float_layers"]) <= 2 for t in trials)
    assert any(t.get("k") for t in trials) and search["ranking"]  # skip_conv_layers were searched
    # skip_conv_layers grow along the greedy ranking made on the emulated build (vacc_rank)
    assert [g["layer"] for g in search["ranking_fidelity_db"]] == search["ranking"] and len(search["ranking"]) <= 2
    assert next(t for t in trials if t.get("k") == 1)["float_layers"] == search["ranking"][:1]
    # target 0 is missed: the other method x weight_scale pairs are tried with the best float convs
    refined = [t for t in trials if t.get("refine")]
    assert len(refined) == 3 and len({tuple(t["skip_layers"]) for t in refined}) == 1
    c = search["chosen"]
    yaml_path = next(ln for ln in out.splitlines() if ln.strip().startswith("yaml")).split()[-1]
    q = yaml.safe_load(open(yaml_path).read())["backend"]["quantize"]
    assert q == {"calibrate_mode": c["quant"], "quantize_per_channel": c["per_channel"],
                 "weight_scale": c["weight_scale"], "skip_conv_layers": c["float_layer_indices"]}
    assert "int8 (vacc, emulated)" in out


def test_target_fidelity_search_scores_fidelity_and_meets_it_or_keeps_the_best(env, capsys) -> None:
    work, imgs = env
    base = ["build", "lesrcnn_x2", *ARGS, "--precision", "int8", "--calib-images", str(imgs),
            "--max-float-layers", "1", "--workdir", str(work / "fid")]
    assert main([*base, "--target-fidelity", "1"]) == 0
    out = capsys.readouterr().out
    assert "int8 search for fidelity >= 1 dB to fp32 (validation >= 1.5 dB)" in out and "fidelity " in out
    (path,) = (work / "fid" / "lesrcnn_x2" / "search").glob("fid1-*.json")
    met = json.loads(path.read_text())
    assert met["met"] and met["target_drop_db"] is None and met["target_fidelity_db"] == 1.0
    assert all(t["fidelity_db"] > 1.5 and t["meets"] for t in met["trials"])
    assert not any(t.get("k") for t in met["trials"])  # met at once: no layer kept float
    assert main([*base, "--target-drop", "0.5", "--target-fidelity", "500"]) == 0
    out = capsys.readouterr().out
    assert "a PSNR drop within 0.5 dB" in out and "and fidelity >= 500 dB" in out and "NOT met" in out
    (path,) = (work / "fid" / "lesrcnn_x2" / "search").glob("drop0.5-fid500-*.json")
    missed = json.loads(path.read_text())
    assert not missed["met"] and any(t.get("k") == 1 for t in missed["trials"])  # it grew the float layers
    assert missed["chosen"]["fidelity_db"] == max(t["fidelity_db"] for t in missed["trials"])


def test_reference_psnr_judges_the_predicted_drop(env, capsys) -> None:
    work, imgs = env
    cmd = ["build", "lesrcnn_x2", *ARGS, "--precision", "int8", "--calib-images", str(imgs), "--target-drop", "0.1",
           "--reference-psnr", "60", "--max-float-layers", "1", "--workdir", str(work / "ref")]
    assert main(cmd) == 0
    out = capsys.readouterr().out
    assert "a PSNR drop within 0.1 dB where fp32 reaches 60 dB" in out and "at ref." in out
    (path,) = (work / "ref" / "lesrcnn_x2" / "search").glob("drop0.1-at60-*.json")
    result = json.loads(path.read_text())
    assert result["reference_psnr_db"] == 60 and all("predicted_drop_db" in t for t in result["trials"])
    # at 60 dB fp32 the same int8 noise costs far more than on the validation images themselves
    assert all(t["predicted_drop_db"] < t["drop_db"] for t in result["trials"] if t["drop_db"] < 0)
    assert all(t["meets"] == (t["predicted_drop_db"] >= -0.1) for t in result["trials"])


def test_target_drop_bad_inputs(env, capsys) -> None:
    work, imgs = env
    base = ["build", "lesrcnn_x2", *ARGS, "--precision", "int8", "--workdir", str(work)]
    assert main([*base, "--target-drop", "0.1"]) == 2
    assert "needs calibration images" in capsys.readouterr().err
    assert main([*base, "--calib-images", str(imgs), "--target-drop", "-1"]) == 2
    assert "expected a drop in dB" in capsys.readouterr().err
    assert main([*base, "--calib-images", str(imgs), "--target-fidelity", "-3"]) == 2
    assert "expected a fidelity PSNR in dB > 0" in capsys.readouterr().err
    assert main([*base, "--calib-images", str(imgs), "--target-fidelity", "30", "--reference-psnr", "38"]) == 2
    assert "applies to a drop target only" in capsys.readouterr().err


def test_vacc_greedy_ranking_adds_the_conv_that_helps_the_emulation_most(tmp_path) -> None:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from vacc_deploy.backends.ort.vacc_numerics import emulate, symmetric_thresholds
    from vacc_deploy.pipeline.vacc_rank import greedy_float_convs

    rng = np.random.default_rng(0)
    w = {n: numpy_helper.from_array(rng.normal(0, 0.5, (4, 4, 1, 1)).astype(np.float32), n + "_w") for n in ("a", "b", "c")}
    nodes = [helper.make_node("Conv", ["x", "a_w"], ["t"], name="a"), helper.make_node("Relu", ["t"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "b_w"], ["u"], name="b"), helper.make_node("Conv", ["u", "c_w"], ["y"], name="c")]
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4, 2, 2]) for n in ("x", "y")]
    model = helper.make_model(helper.make_graph(nodes, "g", io[:1], io[1:], list(w.values())),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "m.onnx"))
    inputs = [rng.normal(0, 1, (1, 4, 2, 2)).astype(np.float32) for _ in range(3)]
    ranges = {"x": (-2.0, 3.0), "t": (-1.0, 1.5), "r": (0.0, 1.5), "u": (-1.0, 1.0), "y": (-2.0, 2.0)}
    # Score every move by hand (emulate + ONNX Runtime) and check the greedy took the best.
    run = lambda m: np.concatenate([ort.InferenceSession(m.SerializeToString()).run(None, {"x": x})[0] for x in inputs])
    ref = run(model).astype(np.float64)

    def err(floats):
        em, _ = emulate(model, symmetric_thresholds(ranges), weight_scale="max", per_channel=True, float_convs=floats)
        return float(np.mean((run(em) - ref) ** 2))

    got = greedy_float_convs(tmp_path / "m.onnx", ranges, inputs, weight_scale="max", per_channel=True,
                             fixed=[], pool=["a", "b", "c"], steps=2)
    # Moves: one conv, or two adjacent convs (b reads a through Relu; c reads b); the move removing
    # the most squared error per conv is taken first.
    base = err([])
    moves = [("a",), ("b",), ("c",), ("a", "b"), ("b", "c")]
    best = max(moves, key=lambda m: (base - err(list(m))) / len(m))
    assert [g["layer"] for g in got][:len(best)] == list(best)
    peak = float(np.abs(ref).max())
    assert got[len(best) - 1]["fidelity_db"] == pytest.approx(10 * np.log10(peak**2 / err(list(best))), abs=1e-3)
    if len(best) == 1:  # the second step adds the best single to it
        second = max((c for c in "abc" if c != best[0]), key=lambda c: -err([best[0], c]))
        assert got[1]["layer"] == second


def test_without_targets_clears_every_search_field_and_nothing_else() -> None:
    from vacc_deploy.backends import BuildOptions

    opts = BuildOptions(precision="int8", quant="max", target_drop=0.1, target_fidelity=40.0, reference_psnr=38.0,
                        max_float_layers=3)
    assert opts.searches and not opts.without_targets().searches
    assert opts.without_targets() == BuildOptions(precision="int8", quant="max")


def test_the_fp32_reference_runs_each_validation_image_once() -> None:
    """With a fidelity target every trial compares with fp32's outputs: the reference upscaler runs
    each distinct image once and hands out equal copies after."""
    from vacc_deploy.pipeline.search import _RememberingUpscaler
    from vacc_deploy.spec import ModelSpec

    class Session:
        input_shape = None
        runs = 0

        def run(self, x: np.ndarray) -> np.ndarray:
            Session.runs += 1
            return np.repeat(np.repeat(x, 2, axis=2), 2, axis=3)

    up = _RememberingUpscaler(Session(), ModelSpec(scale=2))
    a, b = np.random.default_rng(0).random((2, 5, 4, 3), dtype=np.float32)
    first = up(a)
    first[0, 0, 0] = -1.0  # a caller's change does not reach the remembered output
    assert np.array_equal(up(a), up(a)) and up(a)[0, 0, 0] != -1.0 and Session.runs == 1
    assert up(b).shape == (10, 8, 3) and Session.runs == 2


@pytest.mark.parametrize(("kind", "given", "judged_at"), [
    ("official", None, 37.65),   # the row's paper Set5 PSNR (its YAML's ``paper``)
    ("official", 30.0, 30.0),    # the user's
    ("official", 0.0, None),     # --reference-psnr off: the validation images, with the margin
    ("file", None, None),        # other weights: the paper's figure is not theirs
])
def test_a_drop_is_judged_at_the_rows_paper_psnr_with_official_weights(tmp_path, monkeypatch, kind, given,
                                                                        judged_at) -> None:
    from types import SimpleNamespace

    from vacc_deploy.backends import BuildOptions
    from vacc_deploy.config import load_row
    from vacc_deploy.pipeline import CalibRequest, ModelRequest
    from vacc_deploy.pipeline import search as search_mod
    from vacc_deploy.weights import WeightsRef

    seen = {}

    def run_search(up, req, pairs) -> dict:
        seen["r"] = req.build.reference_psnr
        return {"judged_at": seen["r"]}

    monkeypatch.setattr(search_mod, "validation_pairs", lambda folder, seed=0: [])
    monkeypatch.setattr(search_mod, "_run_search", run_search)
    up = SimpleNamespace(config=load_row("lesrcnn_x2"), weights=WeightsRef(f"{kind}:w.pth", "ab" * 32, "w.pth"),
                         exported=SimpleNamespace(onnx_path=tmp_path / "e" / "model.onnx"),
                         calib=SimpleNamespace(sha256="c" * 64), workdir=tmp_path)
    req = ModelRequest(build=BuildOptions(precision="int8", target_drop=0.1, reference_psnr=given),
                       calib=CalibRequest(images=tmp_path))
    search_mod.search_stage(up, req)
    assert seen["r"] == judged_at
