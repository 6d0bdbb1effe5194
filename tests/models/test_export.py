"""Smoke test: small rows export to ONNX with sub-pixel upsampling as DepthToSpace (mode CRD)."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper

from vacc_deploy.models import create_model


def _export(model: torch.nn.Module, x: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, (x,), buf, dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["output"])
    return buf.getvalue()


@pytest.mark.parametrize(("row", "blocks"), [("lesrcnn_x2", [2, 2]), ("bicubic_pp_x3", [6])])
def test_export_depth_to_space_crd(row: str, blocks: list[int]) -> None:
    model = create_model(row, "synthetic")
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    blob = _export(model, x)
    graph = onnx.load_from_string(blob).graph
    d2s = [n for n in graph.node if n.op_type == "DepthToSpace"]
    attrs = [{a.name: helper.get_attribute_value(a) for a in n.attribute} for n in d2s]
    assert [a["blocksize"] for a in attrs] == blocks
    assert all(a["mode"] in (b"CRD", "CRD") for a in attrs)
    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        ref = model(x).numpy()
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= 1e-4 * (ref.max() - ref.min())
