"""Tests of the BSRGAN degradation model: each single degradation, the pipeline, seeding, CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from vacc_deploy import degradation as D
from vacc_deploy.errors import ShapeError, UsageError

REPO = Path(__file__).resolve().parents[2]


def _texture(h: int = 128, w: int = 128, seed: int = 0) -> np.ndarray:
    """Deterministic detailed RGB test image, float32 in [0.1, 0.9] (so noise is rarely clipped)."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 0.8)
    yy, xx = np.mgrid[0:h, 0:w]
    stripes = (0.5 + 0.5 * np.sin(xx * 0.7 + yy * 0.3))[..., None].astype(np.float32)
    img = 0.5 * noise + 0.5 * stripes
    img = (img - img.min()) / (img.max() - img.min())
    return (0.1 + 0.8 * img).astype(np.float32)


def _smooth(h: int = 128, w: int = 128) -> np.ndarray:
    """Smooth colour gradient, float32 (JPEG blocks show up clearly on it)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xx / w, yy / h, 0.5 + 0.4 * np.sin((xx + yy) / 23.0)], axis=-1)
    return (0.1 + 0.8 * img).astype(np.float32)


def _hf_energy(img: np.ndarray) -> float:
    """Mean |Laplacian| of the grey image: high-frequency energy."""
    return float(np.abs(cv2.Laplacian(img.mean(axis=2), cv2.CV_32F)).mean())


def _blockiness(img: np.ndarray) -> float:
    """Ratio of mean |horizontal+vertical difference| across 8-px block boundaries to within blocks."""
    g = img.mean(axis=2) * 255.0
    ratios = []
    for d in (np.abs(np.diff(g, axis=1)), np.abs(np.diff(g, axis=0)).T):
        idx = np.arange(d.shape[1])
        boundary = (idx % 8) == 7
        ratios.append(d[:, boundary].mean() / d[:, ~boundary].mean())
    return float(np.mean(ratios))


# ---------------------------------------------------------------- kernels


@pytest.mark.parametrize("seed", range(6))
def test_random_kernels_are_normalised(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for k in (D.random_gaussian_kernel(rng), D.random_motion_kernel(rng)):
        assert k.dtype == np.float32 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
        assert 7 <= k.shape[0] <= 21 and k.min() >= 0 and abs(float(k.sum()) - 1) < 1e-5


def test_anisotropic_equal_axes_is_isotropic() -> None:
    iso = D.isotropic_gaussian_kernel(15, 2.0)
    aniso = D.anisotropic_gaussian_kernel(15, 4.0, 4.0, 0.7)
    np.testing.assert_allclose(iso, aniso, atol=1e-6)
    rot = D.anisotropic_gaussian_kernel(15, 6.0, 0.5, 0.0)  # long axis horizontal
    assert rot[7, :].sum() > rot[:, 7].sum()


def test_shifted_nearest_is_aligned_with_area_downsampling() -> None:
    img = _texture(128, 128)
    ref = cv2.GaussianBlur(D.downsample(img, 4, "area"), (0, 0), 0.1)
    shifted = D.nearest_downsample_shifted(img, 4, 1.2)
    assert shifted.shape == (32, 32, 3)
    assert np.abs(shifted - ref).mean() < np.abs(img[::4, ::4] - ref).mean()


# ---------------------------------------------------------------- blur


@pytest.mark.parametrize("kernel", [D.isotropic_gaussian_kernel(13, 1.5),
                                    D.anisotropic_gaussian_kernel(15, 4.0, 0.8, 0.5)])
def test_blur_lowers_high_frequency_energy(kernel: np.ndarray) -> None:
    img = _texture()
    out = D.apply_kernel(img, kernel)
    assert out.shape == img.shape and out.dtype == np.float32
    assert _hf_energy(out) < 0.7 * _hf_energy(img)
    np.testing.assert_allclose(out.mean(), img.mean(), atol=2e-3)  # kernels preserve brightness


def test_random_blur_lowers_high_frequency_energy() -> None:
    img = _texture()
    ref = _hf_energy(img)
    energies = [_hf_energy(D.add_blur(img, np.random.default_rng(s))) for s in range(8)]
    assert max(energies) <= ref * (1 + 1e-4)  # sigma can be as small as 0.1 (almost identity)
    assert np.mean(energies) < 0.8 * ref


def test_motion_blur_and_deblur_pair() -> None:
    img = _texture()
    out = D.apply_kernel(img, D.motion_blur_kernel(15, 12.0, 0.3))
    assert _hf_energy(out) < 0.7 * _hf_energy(img)
    for seed in range(4):
        lq, hq = D.degrade_blur(img, seed)
        assert lq.shape == hq.shape == img.shape and lq.dtype == np.float32
        assert _hf_energy(lq) < _hf_energy(hq)


# ---------------------------------------------------------------- downsampling


@pytest.mark.parametrize("sf", [1, 2, 3, 4])
@pytest.mark.parametrize("mode", ["nearest", "bilinear", "bicubic", "area"])
def test_downsample_sizes(sf: int, mode: str) -> None:
    img = _texture(120, 96)
    assert D.downsample(img, sf, mode).shape == (120 // sf, 96 // sf, 3)
    assert D.nearest_downsample_shifted(img, sf, 0.5).shape == (120 // sf, 96 // sf, 3)


def test_resize_rejects_unknown_mode() -> None:
    with pytest.raises(ValueError):
        D.resize(_texture(), (10, 10), "lanczos")


@pytest.mark.parametrize("sf", [1, 2, 3, 4])
def test_bicubic_pair(sf: int) -> None:
    lq, hq = D.degrade_bicubic(_texture(131, 97), sf)
    assert hq.shape == (131 - 131 % sf, 97 - 97 % sf, 3)
    assert lq.shape == (hq.shape[0] // sf, hq.shape[1] // sf, 3) and lq.dtype == np.float32


# ---------------------------------------------------------------- noise


def _channel_corr(noise: np.ndarray) -> np.ndarray:
    return np.corrcoef(noise.reshape(-1, 3).T)


@pytest.mark.parametrize("sigma", [5 / 255, 15 / 255, 25 / 255])
def test_gaussian_noise_std_and_independence(sigma: float) -> None:
    img = np.full((128, 128, 3), 0.5, np.float32)
    noise = D.add_gaussian_noise(img, sigma, np.random.default_rng(0)) - img
    assert abs(noise.std() / sigma - 1) < 0.05
    corr = _channel_corr(noise)
    assert np.abs(corr[np.triu_indices(3, 1)]).max() < 0.05


def test_gray_noise_is_fully_correlated() -> None:
    img = np.full((64, 64, 3), 0.5, np.float32)
    noise = D.add_gray_noise(img, 10 / 255, np.random.default_rng(1)) - img
    assert _channel_corr(noise)[0, 1] > 0.99
    assert abs(noise.std() * 255 / 10 - 1) < 0.05


def test_correlated_noise_has_correlated_channels() -> None:
    img = np.full((128, 128, 3), 0.5, np.float32)
    s = 15 / 255
    cov = s * s * np.array([[1.0, 0.7, 0.5], [0.7, 1.0, 0.6], [0.5, 0.6, 1.0]])
    noise = D.add_correlated_noise(img, cov, np.random.default_rng(2)) - img
    np.testing.assert_allclose(np.cov(noise.reshape(-1, 3).T), cov, rtol=0.1, atol=1e-5)
    assert _channel_corr(noise)[np.triu_indices(3, 1)].min() > 0.3
    # A seeded random paper covariance (U^T diag(d) U) draw: PSD, bounded, correlated channels.
    rcov = D.random_noise_covariance(s, np.random.default_rng(3))
    assert np.linalg.eigvalsh(rcov).min() > -1e-12 and np.trace(rcov) <= 3 * s * s + 1e-12
    rnoise = D.add_correlated_noise(img, rcov, np.random.default_rng(4)) - img
    assert np.abs(_channel_corr(rnoise)[np.triu_indices(3, 1)]).max() > 0.3


def test_random_noise_covariances_are_often_correlated() -> None:
    rng = np.random.default_rng(5)
    strong = 0
    for _ in range(50):
        c = D.random_noise_covariance(0.1, rng)
        d = np.sqrt(np.diag(c))
        strong += np.abs((c / np.outer(d, d))[np.triu_indices(3, 1)]).max() > 0.3
    assert strong > 25


def test_random_gaussian_noise_level_range() -> None:
    img = np.full((64, 64, 3), 0.5, np.float32)
    stds = [(D.add_random_gaussian_noise(img, np.random.default_rng(s)) - img).std()
            for s in range(20)]
    assert 0 < min(stds) and max(stds) < 26 / 255 and max(stds) > 10 / 255


def test_sensor_noise_is_signal_dependent() -> None:
    rng = np.random.default_rng(6)
    dark, bright = np.full((64, 64, 3), 0.05, np.float32), np.full((64, 64, 3), 0.6, np.float32)
    n_dark = D.add_sensor_noise(dark, 0.01, 1e-6, rng) - dark
    n_bright = D.add_sensor_noise(bright, 0.01, 1e-6, rng) - bright
    assert n_dark.std() > 0.005 and n_bright.std() > 0.005
    lin_dark = np.power(D.add_sensor_noise(dark, 0.01, 1e-6, rng), 2.2) - 0.05 ** 2.2
    lin_bright = np.power(D.add_sensor_noise(bright, 0.01, 1e-6, rng), 2.2) - 0.6 ** 2.2
    assert lin_bright.std() > 2 * lin_dark.std()  # shot noise grows with the linear signal
    out = D.add_random_sensor_noise(_texture(), np.random.default_rng(7))
    assert out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1


# ---------------------------------------------------------------- JPEG


@pytest.mark.parametrize("quality", [30, 50])
def test_jpeg_adds_block_artifacts(quality: int) -> None:
    img = _smooth()
    out = D.add_jpeg(img, quality)
    assert out.shape == img.shape and out.dtype == np.float32
    assert _blockiness(out) > 1.0 and _blockiness(out) > _blockiness(img) + 0.1
    assert np.abs(out - img).mean() > 1e-3


def test_random_jpeg_changes_image() -> None:
    img = _texture()
    out = D.add_random_jpeg(img, np.random.default_rng(8))
    assert 0 < np.abs(out - img).mean() < 0.1


# ---------------------------------------------------------------- full pipeline


@pytest.mark.parametrize("sf", [1, 2, 3, 4])
def test_pipeline_shapes_and_range(sf: int) -> None:
    img = _texture(131, 97)
    for seed in range(3):
        lq, hq = D.degrade_bsrgan(img, sf, seed)
        assert hq.shape == (131 - 131 % sf, 97 - 97 % sf, 3)
        assert lq.shape == (hq.shape[0] // sf, hq.shape[1] // sf, 3)
        for a in (lq, hq):
            assert a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1
        np.testing.assert_array_equal(hq, img[: hq.shape[0], : hq.shape[1]])


@pytest.mark.parametrize("sf", [1, 2, 3, 4])
def test_pipeline_lq_patch(sf: int) -> None:
    img = _texture(128, 128)
    lq, hq = D.degrade_bsrgan(img, sf, 11, lq_patch=24)
    assert lq.shape == (24, 24, 3) and hq.shape == (24 * sf, 24 * sf, 3)
    assert lq.dtype == hq.dtype == np.float32


def test_random_aligned_crop_is_aligned() -> None:
    hq = _texture(64, 64)
    lq = hq[::4, ::4]
    lq_c, hq_c = D.random_aligned_crop(lq, hq, 4, 5, np.random.default_rng(0))
    np.testing.assert_array_equal(lq_c, hq_c[::4, ::4])


def test_pipeline_seeding() -> None:
    img = _texture()
    a = D.degrade_bsrgan(img, 4, 123, lq_patch=16)
    b = D.degrade_bsrgan(img, 4, np.random.default_rng(123), lq_patch=16)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    outs = [D.degrade_bsrgan(img, 4, s)[0] for s in range(5)]
    for i in range(5):
        for j in range(i + 1, 5):
            assert not np.array_equal(outs[i], outs[j])


def test_pipeline_degrades() -> None:
    img = _texture()
    for seed in range(4):
        lq, hq = D.degrade_bsrgan(img, 2, seed)
        ref, _ = D.degrade_bicubic(img, 2)
        assert np.abs(lq - ref).mean() > 1e-3  # differs from plain bicubic


def test_pipeline_errors() -> None:
    with pytest.raises(UsageError):
        D.degrade_bsrgan(_texture(), 5, 0)
    with pytest.raises(ShapeError):
        D.degrade_bsrgan(_texture(64, 64), 4, 0, lq_patch=32)
    with pytest.raises(ShapeError):
        D.degrade_bsrgan(np.zeros((16, 16), np.float32), 2, 0)
    with pytest.raises(UsageError):
        D.degrade_bsrgan(_texture(), 2, "seed")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        D.degrade_bsrgan(_texture(), 2, -1)


# ---------------------------------------------------------------- CLI


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "degrade.py"), *args],
                          capture_output=True, text=True, cwd=REPO, timeout=60)


def test_cli_writes_samples_and_grid(tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    cv2.imwrite(str(src), (_texture(96, 80)[..., ::-1] * 255).astype(np.uint8))
    out = tmp_path / "out"
    res = _cli(str(src), "--out", str(out), "--sf", "2", "--n", "3", "--seed", "5")
    assert res.returncode == 0, res.stderr
    names = sorted(p.name for p in out.iterdir())
    assert "grid.png" in names and "hq.png" in names and len([n for n in names if n.startswith("lq_")]) == 3
    assert cv2.imread(str(out / "lq_000.png")).shape == (48, 40, 3)
    assert not [n for n in names if n.startswith(".")]  # no temp files left


def test_cli_exit_codes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert _cli(str(bad), "--out", str(tmp_path / "o")).returncode == 1
    res = _cli(str(bad), "--out", str(tmp_path / "o"), "--sf", "7")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert _cli(str(bad), "--out", str(tmp_path / "o"), "--n", "0").returncode == 2
    assert _cli(str(bad), "--out", str(tmp_path / "o"), "--seed", "-3").returncode == 2
    assert _cli(str(tmp_path / "missing.png"), "--out", str(tmp_path / "o")).returncode == 1


def test_pipeline_trace_lists_shuffled_steps() -> None:
    trace: list[str] = []
    D.degrade_bsrgan(_texture(), 4, 3, trace=trace)
    steps = [t for t in trace if not t.startswith("down1")]
    assert sorted(steps) == sorted(["blur1", "blur2", "down2", "down3", "noise", "jpeg", "sensor"])
    assert steps.index("down2") < steps.index("down3")
