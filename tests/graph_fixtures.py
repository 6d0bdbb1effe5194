"""Fixtures shared by the calibration, ONNX Runtime backend and evaluation tests: a tiny Conv-Relu-Conv-Add
model, ten random inputs and their brute-force activations. A test folder that uses them imports them
into its ``conftest.py`` (so they stay out of the other folders' namespace)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tests.graphs import conv_relu_conv_add, random_inputs

TENSORS = ["x", "t1", "t2", "t3", "y"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return conv_relu_conv_add(tmp_path_factory.mktemp("quant") / "tiny.onnx")


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    return random_inputs(10)


@pytest.fixture(scope="module")
def brute(tiny_model, images) -> dict[str, np.ndarray]:
    """Every activation of every image, concatenated in memory (the reference)."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(tiny_model)))
    vis = {v.name: v for v in model.graph.value_info}
    del model.graph.output[:]
    model.graph.output.extend([vis["t1"], vis["t2"], vis["t3"]])
    model.graph.output.append(onnx.helper.make_tensor_value_info("y", 1, [1, 3, 16, 16]))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out: dict[str, list[np.ndarray]] = {k: [] for k in TENSORS}
    for img in images:
        vals = sess.run(["t1", "t2", "t3", "y"], {"x": img})
        out["x"].append(img)
        for k, v in zip(["t1", "t2", "t3", "y"], vals):
            out[k].append(v)
    return {k: np.concatenate([a.ravel() for a in v]) for k, v in out.items()}
