"""Training pairs: random aligned (LR, HR) patches from a folder of HR images.

The LR side is made the way the row is evaluated or deployed:

- ``bicubic``: MATLAB-compatible bicubic downsampling of the whole uint8 HR image (the same function
  that makes the evaluation LR images, :func:`vacc_deploy.imaging.resize.bicubic_downsample_uint8`),
  computed once per image and kept in memory;
- ``bsrgan``: the BSRGAN practical degradation model (:mod:`vacc_deploy.degradation`), drawn anew for
  every patch;
- ``blur`` (scale 1 rows): a random Gaussian or motion blur of the HR patch (same size).

Patches get a random flip / 90-degree rotation (the same on both sides). Both sides then go through
the row's own pre-processing (:func:`vacc_deploy.imaging.processing.to_network`), so the channel order and
value range are the family's. Torch-free: batches are numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from vacc_deploy.degradation import degrade_blur, degrade_bsrgan
from vacc_deploy.errors import DatasetError
from vacc_deploy.imaging.datasets import list_images
from vacc_deploy.imaging.io import read_image, to_uint
from vacc_deploy.imaging.resize import bicubic_downsample_uint8, crop_to_multiple
from vacc_deploy.imaging.processing import to_network
from vacc_deploy.spec import ModelSpec

Degrade = Literal["bicubic", "bsrgan", "blur"]
DEGRADES: tuple[str, ...] = ("bicubic", "bsrgan", "blur")
_BLUR_MARGIN = 12  # px of context around a deblurring patch (largest kernel radius is 10)


def image_files(folders: list[Path]) -> list[Path]:
    """The images directly in each folder (sorted per folder, folders in the given order).

    Raises DatasetError when a folder is missing or the folders hold no image.
    """
    files: list[Path] = []
    for folder in folders:
        files.extend(list_images(folder))
    if not files:
        raise DatasetError(f"{', '.join(map(str, folders))}: no images found", option="images")
    return files


def split_holdout(files: list[Path], n_val: int, seed: int) -> tuple[list[Path], list[Path]]:
    """(train, validation): a seeded choice of ``n_val`` files is held out for validation."""
    if n_val <= 0:
        return list(files), []
    if n_val >= len(files):
        raise DatasetError(f"cannot hold out {n_val} validation images from {len(files)} images")
    rng = np.random.default_rng([seed, 7])
    picked = set(rng.choice(len(files), size=n_val, replace=False).tolist())
    val = [f for i, f in enumerate(files) if i in picked]
    return [f for i, f in enumerate(files) if i not in picked], val


def read_uint8(path: Path) -> np.ndarray:
    """An image file as uint8 RGB (H, W, 3)."""
    return to_uint(read_image(path).rgb, 8, "round")


def augment(img: np.ndarray, code: int) -> np.ndarray:
    """One of the 8 flips/rotations of an (H, W, C) image: bit 0 flips rows, bit 1 flips columns,
    bit 2 transposes."""
    if code & 1:
        img = img[::-1]
    if code & 2:
        img = img[:, ::-1]
    if code & 4:
        img = img.transpose(1, 0, 2)
    return np.ascontiguousarray(img)


@dataclass
class PatchSampler:
    """Random training batches for one row (see the module docstring).

    ``patch`` is the LR patch side; the HR patch side is ``patch * scale``. Images smaller than the
    HR patch are skipped (DatasetError when none is left).
    """

    files: list[Path]
    spec: ModelSpec
    patch: int
    degrade: Degrade = "bicubic"

    def __post_init__(self) -> None:
        s, hr_side = self.spec.scale, self.patch * self.spec.scale
        if self.degrade == "blur" and s != 1:
            raise DatasetError(f"blur is for scale-1 rows (this row has scale {s})", option="degrade")
        if self.degrade != "blur" and s == 1:
            raise DatasetError("a scale-1 row trains with blur degradation", option="degrade")
        need = hr_side + (2 * _BLUR_MARGIN if self.degrade == "blur" else 0)
        self.hr: list[np.ndarray] = []
        self.lr: list[np.ndarray | None] = []
        for path in self.files:
            hr = crop_to_multiple(read_uint8(path), s)
            if min(hr.shape[:2]) < need:
                continue
            self.hr.append(hr)
            self.lr.append(bicubic_downsample_uint8(hr, s) if self.degrade == "bicubic" else None)
        if not self.hr:
            raise DatasetError(f"no training image is at least {need}x{need} px (patch {self.patch})", option="patch")

    def _pair(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One (LR, HR) float32 RGB pair in [0, 1], augmented."""
        i = int(rng.integers(len(self.hr)))
        hr, s, p = self.hr[i], self.spec.scale, self.patch
        code = int(rng.integers(8))
        if self.degrade == "bicubic":
            y, x = int(rng.integers(hr.shape[0] // s - p + 1)), int(rng.integers(hr.shape[1] // s - p + 1))
            lr_p = augment(self.lr[i][y: y + p, x: x + p], code)  # type: ignore[index]
            hr_p = augment(hr[y * s: (y + p) * s, x * s: (x + p) * s], code)
            return lr_p.astype(np.float32) / 255.0, hr_p.astype(np.float32) / 255.0
        if self.degrade == "bsrgan":
            side = min(2 * p * s, hr.shape[0] // s * s, hr.shape[1] // s * s)
            crop = _random_crop(hr, side, rng)
            lq, hq = degrade_bsrgan(augment(crop, code).astype(np.float32) / 255.0, s, rng, lq_patch=p)
            return lq, hq
        side, m = p + 2 * _BLUR_MARGIN, _BLUR_MARGIN
        crop = augment(_random_crop(hr, side, rng), code).astype(np.float32) / 255.0
        blurred, sharp = degrade_blur(crop, rng)
        return blurred[m: m + p, m: m + p], sharp[m: m + p, m: m + p]

    def batch(self, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(LR, HR) network tensors (N, 3, p, p) and (N, 3, p*s, p*s), float32, in the row's
        channel order and value range."""
        pairs = [self._pair(rng) for _ in range(size)]
        lr = np.concatenate([to_network(a, self.spec) for a, _ in pairs])
        hr = np.concatenate([to_network(b, self.spec) for _, b in pairs])
        return lr, hr


def _random_crop(img: np.ndarray, side: int, rng: np.random.Generator) -> np.ndarray:
    y = int(rng.integers(img.shape[0] - side + 1))
    x = int(rng.integers(img.shape[1] - side + 1))
    return img[y: y + side, x: x + side]


def validation_pairs(files: list[Path], scale: int, degrade: Degrade, seed: int = 0, multiple: int | None = None
                     ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fixed (LR, HR) uint8 pairs for validation: bicubic LR (standard protocol), or for ``bsrgan``
    / ``blur`` one seeded degradation per image. HR is cropped to a multiple of ``multiple``
    (default ``scale``)."""
    pairs = []
    for k, path in enumerate(files):
        hr = crop_to_multiple(read_uint8(path), multiple or scale)
        if degrade == "bicubic":
            pairs.append((bicubic_downsample_uint8(hr, scale), hr))
            continue
        f = hr.astype(np.float32) / 255.0
        rng = np.random.default_rng([seed, k])
        lq, hq = degrade_bsrgan(f, scale, rng) if degrade == "bsrgan" else degrade_blur(f, rng)
        pairs.append((to_uint(lq, 8, "round"), to_uint(hq, 8, "round")))
    return pairs
