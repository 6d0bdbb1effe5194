"""Tiled inference: exactness with a pointwise model, no seams with a local operator, batching."""

from __future__ import annotations

import numpy as np
import pytest

from vacc_deploy.errors import ShapeError
from vacc_deploy.imaging.tiling import (DEFAULT_OVERLAP, pad_to_multiple, tile_origins,
                                        tiled_apply)


def nearest_up(scale: int):
    def run(batch: np.ndarray) -> np.ndarray:
        return batch.repeat(scale, axis=2).repeat(scale, axis=3)
    return run


def box_blur(x: np.ndarray, r: int) -> np.ndarray:
    """(N, C, H, W) (2r+1)^2 mean filter with zero padding (a local operator of radius r)."""
    h, w = x.shape[-2:]
    p = np.pad(x, ((0, 0), (0, 0), (r, r), (r, r)))
    out = np.zeros_like(x, dtype=np.float64)
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            out += p[..., dy:dy + h, dx:dx + w]
    return out / (2 * r + 1) ** 2


def blur_up(scale: int, r: int = 2):
    def run(batch: np.ndarray) -> np.ndarray:
        return box_blur(batch, r).repeat(scale, axis=2).repeat(scale, axis=3).astype(np.float32)
    return run


def test_tile_origins() -> None:
    assert tile_origins(10, 16, 4) == [0]
    assert tile_origins(16, 16, 4) == [0]
    assert tile_origins(40, 16, 4) == [0, 12, 24]
    assert tile_origins(41, 16, 4) == [0, 12, 24, 25]
    for length in range(16, 80):
        o = tile_origins(length, 16, 6)
        assert o[-1] + 16 == length and all(b - a <= 10 for a, b in zip(o, o[1:]))


@pytest.mark.parametrize("hw", [(7, 9), (16, 16), (16, 37), (45, 33), (1, 50), (31, 17)])
@pytest.mark.parametrize("scale", [1, 2, 3])
def test_pointwise_model_is_exact(hw: tuple[int, int], scale: int) -> None:
    img = np.random.default_rng(sum(hw)).random((3,) + hw).astype(np.float32)
    whole = nearest_up(scale)(img[None])[0]
    out = tiled_apply(img, nearest_up(scale), (16, 16), scale, overlap=6)
    assert out.shape == (3, hw[0] * scale, hw[1] * scale) and out.dtype == np.float32
    np.testing.assert_array_equal(out, whole)


def test_constant_image_has_no_seams() -> None:
    img = np.full((1, 70, 61), 0.7, np.float32)
    out = tiled_apply(img, blur_up(2, r=2), (24, 24), 2, overlap=DEFAULT_OVERLAP)
    inner = out[:, 2 * 2:-2 * 2, 2 * 2:-2 * 2]  # the zero-padded image border darkens 2 LR px
    assert np.abs(inner - 0.7).max() < 1e-6


def test_local_operator_matches_whole_image() -> None:
    rng = np.random.default_rng(5)
    img = rng.random((2, 53, 47))
    img = box_blur(box_blur(img[None], 2), 2)[0].astype(np.float32)  # smooth random image
    r = 2
    whole = blur_up(2, r)(img[None])[0]
    out = tiled_apply(img, blur_up(2, r), (20, 20), 2, overlap=4 * r)
    np.testing.assert_allclose(out, whole, atol=1e-6)
    # overlap = 2r: only the outer r/2 pixels are discarded, so some zero-padding error leaks into
    # the ramp (measured max 0.075 on values ~0.5); the blend still has no discontinuity
    rough = tiled_apply(img, blur_up(2, r), (20, 20), 2, overlap=2 * r)
    assert np.abs(rough - whole).max() < 0.1
    assert np.median(np.abs(rough - whole)) < 1e-6


@pytest.mark.parametrize("batch_size", [2, 3, 8])
def test_batching_is_identical(batch_size: int) -> None:
    img = np.random.default_rng(2).random((3, 41, 29)).astype(np.float32)
    calls: list[int] = []

    def run(batch: np.ndarray) -> np.ndarray:
        calls.append(batch.shape[0])
        return blur_up(2)(batch)

    one = tiled_apply(img, blur_up(2), (16, 16), 2, overlap=8, batch_size=1)
    many = tiled_apply(img, run, (16, 16), 2, overlap=8, batch_size=batch_size)
    np.testing.assert_array_equal(one, many)
    assert set(calls) == {batch_size}  # the last group is filled up to the fixed batch size


def test_pad_to_multiple() -> None:
    img = np.arange(2 * 5 * 7, dtype=np.float32).reshape(2, 5, 7)
    padded, hw = pad_to_multiple(img, 4, "reflect")
    assert padded.shape == (2, 8, 8) and hw == (5, 7)
    np.testing.assert_array_equal(padded[:, :5, :7], img)
    np.testing.assert_array_equal(padded[:, 5, :7], img[:, 3])  # reflect
    edge, _ = pad_to_multiple(img, 4, "edge")
    np.testing.assert_array_equal(edge[:, 7, :7], img[:, 4])
    same, _ = pad_to_multiple(img[:, :4, :4], 4)
    assert same.shape == (2, 4, 4)
    with pytest.raises(ShapeError):
        pad_to_multiple(img, 4, "wrap")


def test_errors() -> None:
    img = np.zeros((3, 20, 20), np.float32)
    with pytest.raises(ShapeError):
        tiled_apply(img, nearest_up(2), (15, 16), 2, size_multiple=4)
    with pytest.raises(ShapeError):
        tiled_apply(img, nearest_up(3), (16, 16), 2)  # model output has the wrong size
    with pytest.raises(ShapeError):
        tiled_apply(img[0], nearest_up(2), (16, 16), 2)
