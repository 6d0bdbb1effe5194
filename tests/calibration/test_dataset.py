"""Calibration sets: seeded and cached, crop/resize modes, bad folders, unreadable images."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from vacc_deploy.calibration.dataset import CalibSource, make_calibration_set
from vacc_deploy.errors import DatasetError, UsageError
from vacc_deploy.spec import ModelSpec

SPEC = ModelSpec(scale=2)
SHAPE = (1, 3, 24, 32)


@pytest.fixture()
def folder(tmp_path) -> Path:
    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(1)
    for i, hw in enumerate([(40, 50), (20, 20), (64, 48)]):
        cv2.imwrite(str(d / f"im{i}.png"), rng.integers(0, 256, (*hw, 3), dtype=np.uint8))
    return d


def _make(folder: Path, work: Path, **kw):
    return make_calibration_set("lesrcnn_x2", SPEC, folder, SHAPE, workdir=work, **kw)


def test_crop_mode_seeded_and_cached(folder, tmp_path) -> None:
    a = _make(folder, tmp_path / "w", num=7, seed=3)
    assert a.num == 7 and len(a.images) == 7
    assert all(cv2.imread(str(p)).shape == (24, 32, 3) for p in a.images)
    again = _make(folder, tmp_path / "w2", num=7, seed=3)
    assert again.sha256 == a.sha256  # same seed, same samples
    assert _make(folder, tmp_path / "w", num=7, seed=4).sha256 != a.sha256
    assert _make(folder, tmp_path / "w", num=7, seed=3).folder == a.folder  # reused


def test_source_yields_network_inputs(folder, tmp_path) -> None:
    calib = _make(folder, tmp_path, num=3)
    arrays = list(CalibSource(calib, ModelSpec(scale=3, channel_order="BGR", value_range=255.0)))
    assert len(arrays) == 3 and arrays[0].shape == SHAPE and arrays[0].dtype == np.float32
    assert arrays[0].max() > 1.5  # scaled to the row's 0..255 range
    rgb = cv2.imread(str(calib.images[0]))[..., ::-1].astype(np.float32)
    np.testing.assert_allclose(arrays[0][0, 2], rgb[..., 0])  # BGR order: channel 2 is R
    np.testing.assert_allclose(arrays[0][0, 0], rgb[..., 2])


@pytest.mark.parametrize("order,value_range", [("RGB", 1.0), ("BGR", 1.0), ("RGB", 255.0), ("BGR", 255.0)])
def test_network_input_is_the_general_conversion_bit_for_bit(tmp_path, order, value_range) -> None:
    """The fast 8-bit path gives exactly ``to_network(read_image(...))``; a gray or 16-bit file takes
    the general path, an unreadable one raises its ImageError."""
    from vacc_deploy.calibration.dataset import network_input
    from vacc_deploy.errors import ImageError
    from vacc_deploy.imaging.io import read_image
    from vacc_deploy.imaging.processing import to_network

    rng = np.random.default_rng(5)
    spec = ModelSpec(scale=2, channel_order=order, value_range=value_range)
    files = {"rgb.png": rng.integers(0, 256, (9, 13, 3), dtype=np.uint8),
             "gray.png": rng.integers(0, 256, (9, 13), dtype=np.uint8),
             "deep.png": rng.integers(0, 65536, (9, 13, 3), dtype=np.uint16)}
    for name, arr in files.items():
        cv2.imwrite(str(tmp_path / name), arr)
        got, ref = network_input(tmp_path / name, spec), to_network(read_image(tmp_path / name).rgb, spec)
        assert got.dtype == ref.dtype and got.shape == ref.shape == (1, 3, 9, 13), name
        np.testing.assert_array_equal(got.view(np.int32), ref.view(np.int32), err_msg=name)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ImageError):
        network_input(tmp_path / "bad.png", spec)


def test_resize_mode_with_fewer_images_warns(folder, tmp_path, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        calib = _make(folder, tmp_path, num=10, mode="resize")
    assert calib.num == 3 and "using all of them" in caplog.text


def test_unreadable_image_is_skipped_and_counted(folder, tmp_path, caplog) -> None:
    (folder / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with caplog.at_level(logging.WARNING):
        calib = _make(folder, tmp_path, num=5)
    assert calib.num == 5 and calib.manifest["n_skipped"] == 1
    assert "zz_broken.png" in caplog.text


def test_empty_and_missing_folders(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        _make(tmp_path / "empty", tmp_path)
    with pytest.raises(DatasetError, match="no such file or folder"):
        _make(tmp_path / "missing", tmp_path)


def test_all_unreadable(tmp_path) -> None:
    d = tmp_path / "bad"
    d.mkdir()
    (d / "a.png").write_bytes(b"nope")
    with pytest.raises(DatasetError, match="none of the 1 images could be used"):
        _make(d, tmp_path / "w")
    assert not list((tmp_path / "w").rglob("*.png"))


def test_bad_mode(folder, tmp_path) -> None:
    with pytest.raises(UsageError):
        _make(folder, tmp_path, mode="zoom")


def test_bsrgan_degradation(folder, tmp_path) -> None:
    plain = _make(folder, tmp_path, num=2)
    degraded = _make(folder, tmp_path, num=2, degrade="bsrgan")
    assert degraded.sha256 != plain.sha256 and degraded.manifest["degrade"] == "bsrgan"


@pytest.fixture()
def small_folder(tmp_path) -> Path:
    """Images all smaller than half the 24x32 input (one shorter than the others)."""
    d = tmp_path / "small"
    d.mkdir()
    rng = np.random.default_rng(2)
    for i, hw in enumerate([(10, 12), (11, 9), (7, 15)]):
        cv2.imwrite(str(d / f"s{i}.png"), rng.integers(0, 256, (*hw, 3), dtype=np.uint8))
    return d


def test_images_smaller_than_half_the_input_point_to_mosaic_mode(small_folder, tmp_path) -> None:
    for mode in ("crop", "resize"):
        with pytest.raises(DatasetError, match="none of the 3 images could be used.*'mosaic'"):
            _make(small_folder, tmp_path / mode, mode=mode)


def test_mosaic_tiles_native_scale_crops_over_the_whole_input(small_folder, tmp_path) -> None:
    calib = _make(small_folder, tmp_path / "w", num=4, mode="mosaic", seed=1)
    assert calib.num == 4 and calib.manifest["n_skipped"] == 0
    sources = {p.name: cv2.imread(str(p)) for p in small_folder.iterdir()}
    for entry, png in zip(calib.manifest["samples"], calib.images):
        sample = cv2.imread(str(png))
        assert sample.shape == (24, 32, 3)
        covered = np.zeros((24, 32), int)
        for t in entry["tiles"]:
            (y, x), (by, bx, h, w) = t["at"], t["box"]
            covered[y : y + h, x : x + w] += 1
            src = sources[t["source"]]
            if by + h <= src.shape[0]:  # a tile of an image shorter than its row is padded below
                np.testing.assert_array_equal(sample[y : y + h, x : x + w], src[by : by + h, bx : bx + w])
        assert (covered == 1).all()  # every pixel from exactly one tile: no gaps, no overlaps
        assert len({t["source"] for t in entry["tiles"]}) == 3  # crops of several images
    again = _make(small_folder, tmp_path / "w2", num=4, mode="mosaic", seed=1)
    assert again.sha256 == calib.sha256 and _make(small_folder, tmp_path / "w3", num=4, mode="mosaic",
                                                   seed=2).sha256 != calib.sha256


def test_auto_mode_crops_when_it_can_and_tiles_when_no_image_is_large_enough(folder, small_folder, tmp_path,
                                                                            caplog) -> None:
    auto = _make(folder, tmp_path / "a", num=3, mode="auto")
    crop = _make(folder, tmp_path / "c", num=3, mode="crop")
    assert auto.manifest["mode"] == "crop" and auto.sha256 == crop.sha256 and auto.folder.name == crop.folder.name
    with caplog.at_level(logging.WARNING):
        tiled = _make(small_folder, tmp_path / "m", num=2, mode="auto")
    assert tiled.manifest["mode"] == "mosaic" and "mosaics of native-scale crops" in caplog.text
    assert tiled.sha256 == _make(small_folder, tmp_path / "m2", num=2, mode="mosaic").sha256
