"""Dataset discovery for the three accepted layouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from vacc_deploy.errors import DatasetError
from vacc_deploy.imaging.datasets import find_pairs, list_images


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_list_images_filters_and_sorts(tmp_path: Path) -> None:
    for n in ("b.PNG", "a.jpg", "c.JpEg", "d.webp", "e.tiff", "f.bmp", "notes.txt", ".hidden.png"):
        _touch(tmp_path / n)
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == [
        "a.jpg", "b.PNG", "c.JpEg", "d.webp", "e.tiff", "f.bmp"]
    with pytest.raises(DatasetError, match="nope"):
        list_images(tmp_path / "nope")


def test_srf_layout(tmp_path: Path) -> None:
    for s in (2, 4):
        for i in (1, 2):
            _touch(tmp_path / f"image_SRF_{s}" / f"img_00{i}_SRF_{s}_HR.png")
        _touch(tmp_path / f"image_SRF_{s}" / f"img_001_SRF_{s}_LR.png")
    pairs = find_pairs(tmp_path, 4)
    assert [p.name for p in pairs] == ["img_001", "img_002"]
    assert pairs[0].lr_path == tmp_path / "image_SRF_4" / "img_001_SRF_4_LR.png"
    assert pairs[1].lr_path is None
    assert find_pairs(tmp_path / "image_SRF_2", 2)[0].hr_path.name == "img_001_SRF_2_HR.png"
    with pytest.raises(DatasetError, match="image_SRF_3"):
        find_pairs(tmp_path, 3)
    with pytest.raises(DatasetError, match="x2"):
        find_pairs(tmp_path / "image_SRF_2", 4)


def test_div2k_layout(tmp_path: Path) -> None:
    _touch(tmp_path / "HR" / "0801.png")
    _touch(tmp_path / "HR" / "0802.png")
    _touch(tmp_path / "LR_bicubic" / "X3" / "0801x3.png")
    pairs = find_pairs(tmp_path, 3)
    assert [(p.name, p.lr_path) for p in pairs] == [
        ("0801", tmp_path / "LR_bicubic" / "X3" / "0801x3.png"), ("0802", None)]
    assert all(p.lr_path is None for p in find_pairs(tmp_path, 2))


def test_hr_only_and_empty(tmp_path: Path) -> None:
    _touch(tmp_path / "hr" / "zebra.png")
    _touch(tmp_path / "hr" / "apple.jpg")
    pairs = find_pairs(tmp_path / "hr", 4)
    assert [(p.name, p.lr_path) for p in pairs] == [("apple", None), ("zebra", None)]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty"):
        find_pairs(tmp_path / "empty", 2)
    with pytest.raises(DatasetError, match="missing"):
        find_pairs(tmp_path / "missing", 2)
    _touch(tmp_path / "emptyhr" / "HR" / "readme.txt")
    with pytest.raises(DatasetError, match="HR"):
        find_pairs(tmp_path / "emptyhr", 2)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shared_set5(images_dir: Path, scale: int) -> None:
    root = images_dir / "Set5"
    if not root.is_dir():
        pytest.skip("Set5 not in shared data")
    pairs = find_pairs(root, scale)
    assert len(pairs) == 5
    assert all(p.lr_path is not None and p.lr_path.is_file() for p in pairs)
    assert pairs == find_pairs(root / f"image_SRF_{scale}", scale)
    rs = images_dir / "RealSRSet"
    if rs.is_dir():
        assert all(p.lr_path is None for p in find_pairs(rs, scale))
