"""Build stage on ONNX Runtime: int8 QDQ and fp16 from a small exported model; skipped layers;
bad inputs; an interrupted build leaves nothing half-written and a rerun completes it."""

from __future__ import annotations


import numpy as np
import onnx
import pytest

from tests.helpers import noise_images
from vacc_deploy.backends.ort.session import OrtSession
from vacc_deploy.backends import BuildOptions
from vacc_deploy.backends.ort.layers import conv_nodes
from vacc_deploy.backends.ort.build import build_onnxruntime
from vacc_deploy.calibration.ranges import calibration_ranges
from vacc_deploy.calibration.dataset import make_calibration_set
from vacc_deploy.cli import main
from vacc_deploy.config import load_row
from vacc_deploy.errors import UsageError
from vacc_deploy.export import export_row

SHAPE = (1, 3, 32, 32)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    work = tmp_path_factory.mktemp("work")
    imgs = noise_images(tmp_path_factory.mktemp("imgs"))
    exported = export_row(load_row("lesrcnn_x2"), "synthetic", SHAPE, workdir=work)
    spec = exported.spec
    calib = make_calibration_set("lesrcnn_x2", spec, imgs, SHAPE, num=4, workdir=work)
    return work, imgs, exported, spec, calib


def _build(env, **opts):
    work, _, exported, spec, calib = env
    o = BuildOptions(**opts)
    ranges = None
    if o.precision == "int8":
        ranges = calibration_ranges(exported.onnx_path, calib, spec, o.quant, o.percentile, work / "lesrcnn_x2")
    return build_onnxruntime(exported.onnx_path, o, row="lesrcnn_x2", ranges=ranges, workdir=work)


def _weight_is_float(model: onnx.ModelProto, conv_name: str) -> bool:
    node = next(n for n in model.graph.node if n.name == conv_name)
    inits = {t.name for t in model.graph.initializer}
    return node.input[1] in inits  # a quantized weight comes through DequantizeLinear instead


def test_int8_qdq_with_skipped_layers(env) -> None:
    built = _build(env, precision="int8", quant="max", skip_layers=("0", "/conv18/conv18.0/Conv"),
                   float_edges=False)
    model = onnx.load(str(built.model_path))
    assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)
    assert _weight_is_float(model, "/sub_mean/shifter/Conv") and _weight_is_float(model, "/conv18/conv18.0/Conv")
    assert not _weight_is_float(model, "/conv2/conv2.0/Conv")
    assert built.manifest["float_layers"] == ["/sub_mean/shifter/Conv", "/conv18/conv18.0/Conv"]
    assert (built.folder / "ranges.json").is_file()
    out = OrtSession(built.model_path).run(np.zeros(SHAPE, np.float32))
    assert out.shape == (1, 3, 64, 64) and np.isfinite(out).all()
    assert _build(env, precision="int8", quant="max", skip_layers=("0", "/conv18/conv18.0/Conv"),
                  float_edges=False).cached


def test_float_edges_by_default(env) -> None:
    built = _build(env, precision="int8", quant="max")
    edges = ["/sub_mean/shifter/Conv", "/conv1/conv1.0/Conv", "/conv18/conv18.0/Conv", "/add_mean/shifter/Conv"]
    assert built.manifest["float_layers"] == edges
    assert built.manifest["float_layer_indices"] == [0, 1, 24, 25]
    model = onnx.load(str(built.model_path))
    assert all(_weight_is_float(model, name) for name in edges)


def test_16bit_activations_build(env) -> None:
    built = _build(env, precision="int8", quant="max", activation_bits=16)
    assert built.folder != _build(env, precision="int8", quant="max").folder
    assert built.manifest["settings"]["activation_bits"] == 16
    model = onnx.load(str(built.model_path))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    qs = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert qs and all(inits[n.input[2]].dtype == np.uint16 for n in qs)
    assert not _weight_is_float(model, "/conv2/conv2.0/Conv")  # int8 weights through DequantizeLinear
    out = OrtSession(built.model_path).run(np.zeros(SHAPE, np.float32))
    assert out.shape == (1, 3, 64, 64) and np.isfinite(out).all()


def test_fp16_keeps_float32_io(env) -> None:
    built = _build(env, precision="fp16")
    sess = OrtSession(built.model_path)
    x = np.random.default_rng(0).random(SHAPE, dtype=np.float32)
    assert sess.run(x).dtype == np.float32


@pytest.mark.parametrize("opts,match", [
    ({"precision": "int8", "quant": "nope"}, "unknown method"),
    ({"precision": "int8", "quant": "max", "skip_layers": ("/no/such/Conv",)}, "no Conv layer"),
    ({"precision": "int9"}, "expected one of"),
    ({"precision": "int8", "quant": "max", "activation_bits": 12}, "activation_bits"),
    ({"precision": "int8", "quant": "max", "activation_bits": 16, "numerics": "vacc"}, "8 bits only"),
])
def test_bad_build_options(env, opts, match) -> None:
    with pytest.raises(UsageError, match=match):
        _build(env, **opts)


def test_int8_without_calibration(env) -> None:
    work, _, exported, spec, _ = env
    with pytest.raises(UsageError, match="needs calibration images") as info:
        build_onnxruntime(exported.onnx_path, BuildOptions(precision="int8", quant="max"),
                          row="lesrcnn_x2", ranges=None, workdir=work)
    assert info.value.option == "calib_images"  # the CLI names its flag (library messages name none)


def test_cli_int8_without_images_is_usage_error(env, capsys) -> None:
    work = env[0]
    code = main(["build", "lesrcnn_x2", "--weights", "synthetic", "--shape", "1x3x32x32", "--precision", "int8",
                 "--workdir", str(work)])
    err = capsys.readouterr().err
    assert code == 2 and "needs calibration images" in err and "Traceback" not in err


def test_interrupted_build_leaves_nothing_and_rerun_completes(env, monkeypatch) -> None:
    import vacc_deploy.backends.ort.qdq as quant

    real = quant.quantize_int8

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(quant, "quantize_int8", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _build(env, precision="int8", quant="max", per_channel=False)
    build_root = env[0] / "lesrcnn_x2" / "build"
    assert not [p for p in build_root.iterdir() if p.name.startswith(".")]
    monkeypatch.setattr(quant, "quantize_int8", real)
    built = _build(env, precision="int8", quant="max", per_channel=False)
    assert built.model_path.is_file() and not built.cached


def test_conv_indices_follow_graph_order(env) -> None:
    names = conv_nodes(onnx.load(str(env[2].onnx_path)))
    assert names[0] == "/sub_mean/shifter/Conv" and names[-1] == "/add_mean/shifter/Conv"


def test_weight_width_decides_the_int8_kernels(env) -> None:
    """8-bit weights need ORT's exact int8 kernels on CPUs without VNNI; 7-bit builds do not."""
    from vacc_deploy.backends.ort.session import int8_8bit_weights

    eight = _build(env, precision="int8", quant="max", reduce_range="off")
    seven = _build(env, precision="int8", quant="max", reduce_range="on")
    assert int8_8bit_weights(eight.model_path) and not int8_8bit_weights(seven.model_path)
    assert not int8_8bit_weights(env[2].onnx_path)  # the fp32 export
    assert seven.manifest["settings"]["reduce_range"] is True


def test_vacc_emulation_never_asks_for_the_exact_int8_kernels(env) -> None:
    """The emulation's convs run in float on dequantized int8 values; ONNX Runtime's exact int8 mode
    (session.x64quantprecision, used on x86 without VNNI) also fails to load its symmetric int8
    activations (QDQS8ToU8Transformer: "Attempt to replace the existing tensor"), so the build
    records its numerics and sessions leave that mode off for it."""
    from vacc_deploy.backends.ort.session import int8_8bit_weights

    vacc = _build(env, precision="int8", quant="max", numerics="vacc")
    ort_build = _build(env, precision="int8", quant="max")
    assert not int8_8bit_weights(vacc.model_path) and int8_8bit_weights(ort_build.model_path)
    out = OrtSession(vacc.model_path).run(np.zeros(SHAPE, np.float32))
    assert out.shape == (1, 3, 64, 64) and np.isfinite(out).all()
