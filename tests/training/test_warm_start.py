"""Warm starts: an untrained, warm-started LESRCNN computes bilinear upscaling (x4: bilinear x2
twice) away from the border, keeps the official key layout, and combines with ``--init``."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vacc_deploy.config import load_row
from vacc_deploy.errors import UsageError
from vacc_deploy.models import create_model, family_of, row_params
from vacc_deploy.training.warm_start import WARM_STARTS, warm_start


def _bilinear(x: np.ndarray, scale: int) -> np.ndarray:
    up = lambda a, s: cv2.resize(a, None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR)  # noqa: E731
    return up(up(x, 2), 2) if scale == 4 else up(x, scale)


@pytest.mark.parametrize("row", ["lesrcnn_x2", "lesrcnn_x3", "lesrcnn_x4"])
def test_warm_started_lesrcnn_is_bilinear_upscaling(row: str) -> None:
    config = load_row(row)
    model = family_of(config).build(row_params(config))
    warm_start(config.arch, model)
    create_model(config, model.state_dict())  # still the official key layout (strict load)
    x = np.random.default_rng(0).random((20, 20, 3)).astype(np.float32)
    with torch.no_grad():
        y = model.eval()(torch.from_numpy(x.transpose(2, 0, 1))[None])[0].numpy().transpose(1, 2, 0)
    scale, border = config.params["scale"], 12
    assert y.shape == (20 * scale, 20 * scale, 3)
    assert np.abs(y - _bilinear(x, scale))[border:-border, border:-border].max() < 1e-5
    assert all(p.requires_grad for n, p in model.named_parameters() if "shifter" not in n)


def test_unknown_family_is_a_usage_error() -> None:
    assert "lesrcnn" in WARM_STARTS
    with pytest.raises(UsageError, match="no warm start"):
        warm_start("edsr", torch.nn.Conv2d(3, 3, 3))


def test_train_with_warm_start_and_init(tmp_path: Path) -> None:
    """x3 from an x2 checkpoint: matching entries copied over the warm start, the x3 upsampler
    (another shape) keeps its bilinear warm start."""
    from tests.training.test_trainer import _opts
    from vacc_deploy.training.loop import train

    folder = tmp_path / "hr"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        cv2.imwrite(str(folder / f"i{i}.png"), cv2.GaussianBlur(rng.integers(0, 256, (60, 60, 3), np.uint8), (5, 5), 2))
    x2 = train(_opts(folder, tmp_path / "x2", row="lesrcnn_x2", warm_start=True, max_steps=1, patch=12))
    x3 = train(_opts(folder, tmp_path / "x3", row="lesrcnn_x3", warm_start=True, init=x2.checkpoint,
                     max_steps=1, patch=12))
    state = torch.load(x3.checkpoint, weights_only=True)
    create_model(load_row("lesrcnn_x3"), state)
    assert state["upsample.up.body.0.weight"].shape[0] == 9 * 64
