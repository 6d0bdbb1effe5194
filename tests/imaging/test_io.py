"""Image reading/writing: bit depths, grayscale, RGBA, JPEG, corrupt files, atomic writes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vacc_deploy.errors import ImageError, ShapeError
from vacc_deploy.imaging.io import read_image, to_uint, upscale_alpha, write_image


def _rgb(h: int = 6, w: int = 7, dtype: type = np.uint8, seed: int = 0) -> np.ndarray:
    hi = 256 if dtype == np.uint8 else 65536
    return np.random.default_rng(seed).integers(0, hi, (h, w, 3)).astype(dtype)


def test_roundtrip_8bit_rgb(tmp_path: Path) -> None:
    rgb = _rgb()
    write_image(tmp_path / "a.png", rgb)
    img = read_image(tmp_path / "a.png")
    assert img.bit_depth == 8 and not img.was_gray and img.alpha is None
    assert img.rgb.dtype == np.float32 and img.rgb.shape == (6, 7, 3)
    np.testing.assert_array_equal(to_uint(img.rgb, 8), rgb)
    # RGB order: the file on disk is BGR
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "a.png"))[..., ::-1], rgb)


def test_roundtrip_16bit(tmp_path: Path) -> None:
    rgb = _rgb(dtype=np.uint16)
    write_image(tmp_path / "b.png", rgb)
    img = read_image(tmp_path / "b.png")
    assert img.bit_depth == 16
    np.testing.assert_array_equal(to_uint(img.rgb, 16), rgb)
    with pytest.raises(ImageError, match="16-bit"):
        write_image(tmp_path / "b.jpg", rgb)


def test_gray_and_gray_alpha(tmp_path: Path) -> None:
    g = np.random.default_rng(1).integers(0, 256, (5, 4), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "g.png"), g)
    img = read_image(tmp_path / "g.png")
    assert img.was_gray and img.alpha is None and img.rgb.shape == (5, 4, 3)
    np.testing.assert_array_equal(to_uint(img.rgb[..., 1], 8), g)
    write_image(tmp_path / "g2.png", to_uint(img.rgb, 8), gray=True)
    assert cv2.imread(str(tmp_path / "g2.png"), cv2.IMREAD_UNCHANGED).ndim == 2
    np.testing.assert_array_equal(read_image(tmp_path / "g2.png").rgb, img.rgb)


def test_rgba(tmp_path: Path) -> None:
    rgb = _rgb()
    alpha = np.linspace(0, 255, 42).reshape(6, 7).astype(np.uint8)
    write_image(tmp_path / "c.png", rgb, alpha=alpha)
    img = read_image(tmp_path / "c.png")
    assert img.alpha is not None and img.alpha.shape == (6, 7) and not img.was_gray
    np.testing.assert_array_equal(to_uint(img.alpha, 8), alpha)
    np.testing.assert_array_equal(to_uint(img.rgb, 8), rgb)
    up = upscale_alpha(img.alpha, (12, 14))
    assert up.shape == (12, 14) and up.min() >= 0 and up.max() <= 1
    write_image(tmp_path / "d.png", rgb, alpha=img.alpha)  # float alpha accepted
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "d.png"), -1)[..., 3], alpha)


def test_jpeg(tmp_path: Path) -> None:
    rgb = np.full((16, 16, 3), (200, 30, 90), np.uint8)
    write_image(tmp_path / "e.jpg", rgb)
    img = read_image(tmp_path / "e.jpg")
    assert img.bit_depth == 8 and img.rgb.shape == (16, 16, 3)
    assert np.abs(to_uint(img.rgb, 8).astype(int) - rgb).max() <= 3  # lossy, colour order kept


def test_unreadable(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    for name in ("empty.png", "bad.png", "missing.png"):
        with pytest.raises(ImageError) as info:
            read_image(tmp_path / name)
        msg = str(info.value)
        assert name in msg and "\n" not in msg


def test_to_uint_conversions() -> None:
    x = np.array([-0.1, 0.0, 0.5, 1 / 255 * 2.5, 0.999, 1.2], dtype=np.float32)
    np.testing.assert_array_equal(to_uint(x, 8, "round"), [0, 0, 128, 2, 255, 255])
    np.testing.assert_array_equal(to_uint(x, 8, "truncate"), [0, 0, 127, 2, 254, 255])
    assert to_uint(np.array([1.0]), 16).dtype == np.uint16
    with pytest.raises(ShapeError):
        to_uint(x, 12)


def test_atomic_write_leaves_no_temp(tmp_path: Path) -> None:
    write_image(tmp_path / "sub" / "f.png", _rgb())
    write_image(tmp_path / "sub" / "f.png", _rgb(seed=3))  # overwrite in place
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["f.png"]
    with pytest.raises(ImageError):
        write_image(tmp_path / "sub" / "g.unknownext", _rgb())
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["f.png"]
    with pytest.raises(ShapeError):
        write_image(tmp_path / "h.png", _rgb().astype(np.float32))


def test_gray_alpha_png_detected(tmp_path: Path) -> None:
    pil = pytest.importorskip("PIL.Image")  # OpenCV cannot write grey+alpha PNGs
    la = np.dstack([np.arange(20, dtype=np.uint8).reshape(4, 5) * 10,
                    np.full((4, 5), 128, np.uint8)])
    pil.fromarray(la, mode="LA").save(tmp_path / "la.png")
    img = read_image(tmp_path / "la.png")
    assert img.was_gray and img.alpha is not None
    np.testing.assert_array_equal(to_uint(img.rgb[..., 0], 8), la[..., 0])
    np.testing.assert_array_equal(to_uint(img.alpha, 8), la[..., 1])


def test_16bit_gray(tmp_path: Path) -> None:
    g = np.random.default_rng(4).integers(0, 65536, (6, 5)).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "g16.png"), g)
    img = read_image(tmp_path / "g16.png")
    assert img.bit_depth == 16 and img.was_gray
    np.testing.assert_array_equal(to_uint(img.rgb[..., 2], 16), g)
