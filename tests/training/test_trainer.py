"""The trainer: patches in each family's convention, a few steps that run and resume, checkpoints in
the official key layout (strict load with create_model), partial init, typed errors."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vacc_deploy.errors import DatasetError, WeightsError
from vacc_deploy.models import create_model, row_spec
from vacc_deploy.config import load_row
from vacc_deploy.training import data
from vacc_deploy.training.loop import TrainOptions, init_from, train
from vacc_deploy.training.state import load_state


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Six small smooth colour images (PNG) with some texture."""
    folder = tmp_path_factory.mktemp("hr")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:72, 0:80].astype(np.float32)
    for i in range(6):
        f = rng.uniform(0.05, 0.3, size=3)
        img = np.stack([np.sin(xx * f[c] + yy * f[(c + 1) % 3] + i) for c in range(3)], axis=2)
        cv2.imwrite(str(folder / f"img_{i}.png"), ((img * 0.5 + 0.5) * 255).astype(np.uint8))
    return folder


def _opts(images: Path, out: Path, **kw) -> TrainOptions:
    base = dict(row="bicubic_pp_x2", images=[images], out=out, minutes=5, max_steps=3, patch=8, batch=2,
                n_val=1, val_every_s=1e9, lr=1e-3)
    return TrainOptions(**{**base, **kw})


def test_train_runs_resumes_and_saves_official_layout(images: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = train(_opts(images, out))
    assert first.step == 3 and len(first.history) == 1
    assert math.isfinite(first.history[0]["loss"]) and first.history[0]["val_psnr_y"] > 0
    create_model("bicubic_pp_x2", first.checkpoint)  # strict load of the official keys
    state = load_state(out / "state.pt", "bicubic_pp_x2")
    assert state["step"] == 3 and "optimizer" in state and "numpy_rng" in state
    second = train(_opts(images, out, max_steps=6))
    assert second.step == 6
    assert [h["step"] for h in second.history] == [3, 6]  # continued from the saved step


def test_loss_goes_down(images: Path, tmp_path: Path) -> None:
    result = train(_opts(images, tmp_path / "run", max_steps=60, val_every_s=1e-6, n_val=1, lr=3e-3))
    losses = [h["loss"] for h in result.history]
    assert np.mean(losses[-10:]) < np.mean(losses[:10])


def test_state_of_another_row_is_refused(images: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(_opts(images, out, max_steps=1))
    with pytest.raises(WeightsError, match="bicubic_pp_x2"):
        load_state(out / "state.pt", "bicubic_pp_x3")


@pytest.mark.parametrize("row", ["bicubic_pp_x2", "edsr_baseline_x2"])
def test_patches_follow_the_row_convention(tmp_path: Path, row: str) -> None:
    red = np.zeros((40, 40, 3), np.uint8)
    red[..., 2] = 255  # BGR on disk: a pure red image
    cv2.imwrite(str(tmp_path / "red.png"), red)
    spec = row_spec(load_row(row))
    sampler = data.PatchSampler([tmp_path / "red.png"], spec, patch=8)
    lr, hr = sampler.batch(2, np.random.default_rng(0))
    assert lr.shape == (2, 3, 8, 8) and hr.shape == (2, 3, 16, 16) and lr.dtype == np.float32
    red_channel = 2 if spec.channel_order == "BGR" else 0
    assert np.allclose(hr[:, red_channel], spec.value_range) and np.allclose(hr[:, 2 - red_channel], 0)


def test_bsrgan_and_blur_pairs(images: Path) -> None:
    files = data.image_files([images])
    x2 = data.PatchSampler(files, row_spec(load_row("edsr_baseline_x2")), patch=12, degrade="bsrgan")
    lr, hr = x2.batch(2, np.random.default_rng(1))
    assert lr.shape == (2, 3, 12, 12) and hr.shape == (2, 3, 24, 24)
    x1 = data.PatchSampler(files, row_spec(load_row("edsr_x1_deblur")), patch=16, degrade="blur")
    lq, hq = x1.batch(2, np.random.default_rng(1))
    assert lq.shape == hq.shape == (2, 3, 16, 16) and not np.allclose(lq, hq)
    with pytest.raises(DatasetError, match="scale-1"):
        data.PatchSampler(files, row_spec(load_row("edsr_baseline_x2")), patch=8, degrade="blur")


def test_holdout_is_seeded_and_disjoint(images: Path) -> None:
    files = data.image_files([images])
    train_a, val_a = data.split_holdout(files, 2, seed=3)
    assert data.split_holdout(files, 2, seed=3) == (train_a, val_a)
    assert len(val_a) == 2 and not set(train_a) & set(val_a) and len(train_a) == 4


def test_init_from_a_smaller_scale_keeps_matching_entries(tmp_path: Path) -> None:
    x2 = create_model("edsr_baseline_x2", "synthetic")
    torch.save(x2.state_dict(), tmp_path / "x2.pt")
    x4 = create_model("edsr_baseline_x4", "synthetic")
    left = init_from(x4, tmp_path / "x2.pt", load_row("edsr_baseline_x4"))
    assert left == ["tail.0.2.weight", "tail.0.2.bias"]
    assert torch.equal(x4.state_dict()["body.0.body.0.weight"], x2.state_dict()["body.0.body.0.weight"])


def test_edsr_to_basicsr_is_the_same_function() -> None:
    from vacc_deploy.models import family_of, row_params
    from vacc_deploy.training.convert import edsr_to_basicsr

    config = load_row("edsr_baseline_x2")
    torch.manual_seed(0)
    src = family_of(config).build(row_params(config)).eval()  # default init: DIV2K mean shifts
    dst = create_model("edsr_mx2", edsr_to_basicsr(src.state_dict(), 16))
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(dst(x) * 255.0, src(x * 255.0), rtol=1e-4, atol=1e-3)
    broken = {**src.state_dict(), "sub_mean.bias": torch.zeros(3)}
    with pytest.raises(WeightsError, match="sub_mean"):
        edsr_to_basicsr(broken, 16)
