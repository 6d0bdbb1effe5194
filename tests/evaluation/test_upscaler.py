"""Tiled inference with a real network: tiled fixed-shape ONNX equals whole-image PyTorch, and a
constant image shows no seam."""

from __future__ import annotations

import numpy as np
import pytest

from vacc_deploy.backends.ort.session import OrtSession
from vacc_deploy.config import load_row
from vacc_deploy.evaluation.protocols import load_pair
from vacc_deploy.imaging.datasets import find_pairs
from vacc_deploy.imaging.io import to_uint
from vacc_deploy.imaging.metrics import psnr_y
from vacc_deploy.evaluation.upscaler import Upscaler
from vacc_deploy.pipeline import ModelRequest, build

TILE = (1, 3, 48, 48)


@pytest.fixture(scope="module")
def lesrcnn(weights_dir, tmp_path_factory):
    config = load_row("lesrcnn_x2")
    req = ModelRequest(weights=str(weights_dir / "lesrcnn_x2.pth"), shape=TILE)
    work = tmp_path_factory.mktemp("w")
    onnx_model = build(config, req, work)
    torch_model = build(config, ModelRequest(weights=req.weights, backend="torch"), work)
    from vacc_deploy.backends.pytorch import open_session as open_torch
    from vacc_deploy.backends import SessionOptions

    tiled = Upscaler(OrtSession(onnx_model.onnx_path), onnx_model.spec, overlap=16)
    whole = Upscaler(open_torch(torch_model, SessionOptions()), torch_model.spec)
    return tiled, whole


def test_constant_image_has_no_seam(lesrcnn) -> None:
    tiled, whole = lesrcnn
    img = np.full((100, 90, 3), 0.4, np.float32)
    a = to_uint(tiled(img), 8, "round").astype(int)
    b = to_uint(whole(img), 8, "round").astype(int)
    inner = a[40:-40, 40:-40]  # away from the image border's zero padding
    assert inner.max() - inner.min() <= 1
    assert np.abs(a - b).max() <= 1


def test_tiled_equals_whole_image_on_set14(lesrcnn, images_dir) -> None:
    tiled, whole = lesrcnn
    pairs = find_pairs(images_dir / "Set14", 2)[:3]
    for pair in pairs:
        lr, hr = load_pair(pair, 2)
        x = lr.astype(np.float32) / 255
        p_tiled = psnr_y(to_uint(tiled(x), 8, "truncate"), hr, 2, True)
        p_whole = psnr_y(to_uint(whole(x), 8, "truncate"), hr, 2, True)
        assert abs(p_tiled - p_whole) < 0.01, pair.name
