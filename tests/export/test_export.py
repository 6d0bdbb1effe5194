"""Export stage: the saved graph has no Constant nodes, so every conv weight and bias is an
initializer and an int8 build quantizes it as a weight (per-channel int8, int32 bias).

RRDBNet is the case that needs it: onnxsim folds each dense block's ``conv5(x) * 0.2`` into the conv
and leaves the folded weight and bias as Constant nodes. A one-block RRDBNet at 16x16 keeps it fast.
"""

from __future__ import annotations

import cv2
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto

from tests.helpers import row_variant
from vacc_deploy.backends.ort.session import OrtSession
from vacc_deploy.backends import BuildOptions
from vacc_deploy.backends.ort.build import build_onnxruntime
from vacc_deploy.calibration.ranges import calibration_ranges
from vacc_deploy.calibration.dataset import make_calibration_set
from vacc_deploy.config import load_row
from vacc_deploy.export import export_row
from vacc_deploy.models import create_model

SHAPE = (1, 3, 16, 16)


@pytest.fixture(scope="module")
def rrdb(tmp_path_factory):
    """A one-block RRDBNet x4 (synthetic weights) exported at 16x16, with its work folder."""
    work = tmp_path_factory.mktemp("work")
    config = load_row(row_variant(tmp_path_factory.mktemp("cfg"), "bsrgan_x4",
                                  params={"in_nc": 3, "out_nc": 3, "nf": 16, "nb": 1, "gc": 8, "scale": 4}))
    return work, config, export_row(config, "synthetic", SHAPE, workdir=work)


def test_no_constant_nodes_and_conv_params_are_initializers(rrdb) -> None:
    _, config, exported = rrdb
    model = onnx.load(str(exported.onnx_path))
    assert not [n.name for n in model.graph.node if n.op_type == "Constant"]
    inits = {t.name for t in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert len(convs) == 1 + 3 * 5 + 5  # conv_first, 3 dense blocks, trunk/up1/up2/HR/last
    assert all(all(i in inits for i in n.input[1:]) for n in convs)
    x = np.random.default_rng(0).random(SHAPE, dtype=np.float32)
    with torch.no_grad():
        ref = create_model(config, "synthetic")(torch.from_numpy(x)).numpy()
    assert np.abs(OrtSession(exported.onnx_path).run(x) - ref).max() <= 1e-4 * (ref.max() - ref.min())


def test_int8_build_quantizes_every_inner_conv_weight_per_channel(rrdb, tmp_path) -> None:
    work, config, exported = rrdb
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(tmp_path / f"{i}.png"), rng.integers(0, 256, (24, 24, 3), dtype=np.uint8))
    spec = exported.spec
    calib = make_calibration_set(config.name, spec, tmp_path, SHAPE, num=2, workdir=work)
    ranges = calibration_ranges(exported.onnx_path, calib, spec, "max", 99.99, work / config.name)
    built = build_onnxruntime(exported.onnx_path, BuildOptions(precision="int8", quant="max"),
                              row=config.name, ranges=ranges, workdir=work)
    model = onnx.load(str(built.model_path))
    inits = {t.name: t for t in model.graph.initializer}
    made = {o: n for n in model.graph.node for o in n.output}
    inner = [n for n in model.graph.node if n.op_type == "Conv" and n.name not in built.manifest["float_layers"]]
    assert len(inner) == 19
    for conv in inner:
        dq_w, dq_b = made[conv.input[1]], made[conv.input[2]]
        assert dq_w.op_type == "DequantizeLinear" and dq_b.op_type == "DequantizeLinear", conv.name
        assert inits[dq_w.input[0]].data_type == TensorProto.INT8, conv.name  # a weight, not an activation
        assert len(inits[dq_w.input[1]].dims) == 1, conv.name  # one scale per output channel
        assert inits[dq_b.input[0]].data_type == TensorProto.INT32, conv.name


def test_fp16_build_reads_the_initializer_graph(rrdb) -> None:
    """The Resize scales shared by both upsamplers are now one initializer: the fp16 build loads, and
    ONNX shape inference (the benchmark's FLOP count) accepts it."""
    work, config, exported = rrdb
    built = build_onnxruntime(exported.onnx_path, BuildOptions(precision="fp16"), row=config.name, workdir=work)
    x = np.random.default_rng(1).random(SHAPE, dtype=np.float32)
    ref = OrtSession(exported.onnx_path).run(x)
    assert np.abs(OrtSession(built.model_path).run(x) - ref).max() <= 1e-2 * (ref.max() - ref.min())
    onnx.shape_inference.infer_shapes(onnx.load(str(built.model_path)), strict_mode=True)
