"""Finding SR evaluation pairs in dataset folders (SPEC section 3), torch-free.

Accepted layouts for ``find_pairs(root, scale)``:

1. ``image_SRF_{s}/*_HR.png`` + ``*_LR.png`` (Set5/Set14 as distributed): ``root`` is either the
   dataset folder holding ``image_SRF_2``, ``image_SRF_3``, ... or one ``image_SRF_{s}`` folder.
2. DIV2K style: ``root/HR/NNNN.png`` with ``root/LR_bicubic/X{s}/NNNNx{s}.png``.
3. A folder of HR images only.

``Pair.lr_path`` is None when no LR file exists for an HR image; the caller then makes it with
:func:`vacc_deploy.imaging.resize.bicubic_downsample_uint8`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from vacc_deploy.errors import DatasetError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_SRF_DIR = re.compile(r"^image_SRF_(\d+)$")


@dataclass(frozen=True)
class Pair:
    """One evaluation image: ``name`` (stable id), HR path, LR path or None (make LR from HR)."""

    name: str
    hr_path: Path
    lr_path: Path | None


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in ``folder`` (not recursive), sorted by name.

    Extensions (case-insensitive): png, jpg, jpeg, bmp, tif, tiff, webp. Hidden files are skipped.
    Raises DatasetError when ``folder`` is not a directory.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"dataset folder not found: {folder}")
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in IMAGE_EXTS)


def images_at(path: str | Path, option: str) -> list[Path]:
    """The images a user pointed at: ``path`` itself when it is a file, else the folder's images.

    Raises DatasetError carrying ``option`` (the request field that named the path, e.g.
    ``"input"``) when the path does not exist or the folder holds no images.
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder", option=option)
    images = list_images(path)
    if not images:
        raise DatasetError(f"{path}: no images in this folder", option=option)
    return images


def _srf_pairs(folder: Path, scale: int) -> list[Pair]:
    pairs = []
    for hr in list_images(folder):
        if not hr.stem.endswith("_HR"):
            continue
        base = hr.stem[: -len("_HR")]
        lr = hr.with_name(f"{base}_LR{hr.suffix}")
        name = re.sub(rf"_SRF_{scale}$", "", base)
        pairs.append(Pair(name, hr, lr if lr.is_file() else None))
    return pairs


def _div2k_pairs(root: Path, scale: int) -> list[Pair]:
    lr_dir = root / "LR_bicubic" / f"X{scale}"
    pairs = []
    for hr in list_images(root / "HR"):
        lr = lr_dir / f"{hr.stem}x{scale}{hr.suffix}"
        pairs.append(Pair(hr.stem, hr, lr if lr.is_file() else None))
    return pairs


def _srf_folder(root: Path, scale: int) -> Path | None:
    """The ``image_SRF_{scale}`` folder for ``root``, or None when root is not in that layout."""
    m = _SRF_DIR.match(root.name)
    if m:
        if int(m.group(1)) != scale:
            raise DatasetError(f"{root} holds scale x{m.group(1)} pairs, not x{scale}")
        return root
    if (root / f"image_SRF_{scale}").is_dir():
        return root / f"image_SRF_{scale}"
    others = sorted(p.name for p in root.iterdir() if p.is_dir() and _SRF_DIR.match(p.name))
    if others:
        raise DatasetError(f"{root} has no image_SRF_{scale} folder (found {', '.join(others)})")
    return None


def find_pairs(root: str | Path, scale: int) -> list[Pair]:
    """Evaluation pairs under ``root`` for SR factor ``scale``, sorted by name.

    Raises:
        DatasetError: ``root`` is missing, or holds no images in any accepted layout.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    srf = _srf_folder(root, scale)
    if srf is not None:
        pairs = _srf_pairs(srf, scale)
        where = srf
    elif (root / "HR").is_dir():
        pairs, where = _div2k_pairs(root, scale), root / "HR"
    else:
        pairs = [Pair(p.stem, p, None) for p in list_images(root)]
        where = root
    if not pairs:
        raise DatasetError(f"no images found in {where} (expected image_SRF_{scale}/*_HR.png, "
                           f"HR/ + LR_bicubic/X{scale}/, or a folder of HR images)")
    return sorted(pairs, key=lambda p: p.name)
