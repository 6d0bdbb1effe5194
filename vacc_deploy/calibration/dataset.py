"""Calibration sets (SPEC section 4): N samples made with the row's own pre-processing, seeded,
hashed and cached in the work folder. Torch-free.

``crop`` mode takes native-scale random crops of the model's input size (what the model sees when
tiling; images smaller than the crop are reflect-padded as tiling pads them); ``resize`` mode
resizes whole images to the input size with ``cv2.INTER_AREA``, as the vendor's build dataset
does. In both modes images smaller than half the input size in either dimension are skipped (their
samples would be mostly padding or interpolation). ``mosaic`` mode is for inputs larger than the
calibration images (a 1080p row calibrated on photos of a few hundred pixels): each sample is the
input-size canvas filled, in rows of tiles left to right, with native-scale random crops of
consecutive images (each crop as large as its image allows, the row as tall as its first tile; no
interpolation, padding only for an image shorter than its row), so the model sees real pixels at
their own scale everywhere but at the tile seams. Every readable image is used. ``auto`` (the
default) is ``crop`` when at least one image is at least half the input size in both dimensions,
else ``mosaic`` (with a warning); the set records the mode it used, and its folder and cache key are
those of that mode. With ``degrade="bsrgan"`` each source image first
goes through the BSRGAN degradation model (realistic low-quality inputs for blind SR rows).

A set is a folder ``<workdir>/<row>/calib/<mode>-<H>x<W>-n<N>-s<seed>-<key>/`` holding the samples
as 8-bit PNGs (``0000.png`` ...; these also serve as the vamc ``dataset`` folder) and
``manifest.json`` (sources, crop boxes, skipped files, hash). Network inputs are made from the PNGs
on the fly, one at a time, so neither disk nor memory holds N float arrays.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable, Iterator
from typing import Any

import cv2
import numpy as np
from tqdm.contrib.logging import logging_redirect_tqdm

from vacc_deploy import artifacts
from vacc_deploy.errors import DatasetError, ImageError, UsageError
from vacc_deploy.imaging.datasets import images_at
from vacc_deploy.imaging.io import read_image, to_uint
from vacc_deploy.imaging.processing import to_network
from vacc_deploy.progress import progress_bar
from vacc_deploy.spec import ModelSpec
from vacc_deploy.types import (
    CALIB_MODES, DEFAULT_CALIB_MODE, DEFAULT_CALIB_NUM, DEFAULT_CALIB_SEED, DEFAULT_DEGRADATION, DEGRADATIONS,
)
from vacc_deploy.artifacts.guard import file_records, reusable, stage_lock

log = logging.getLogger(__name__)

CALIB_FORMAT = 1


@dataclass(frozen=True)
class CalibSet:
    """A built calibration set: its folder, sample count, content hash and manifest."""

    folder: Path
    num: int
    sha256: str
    manifest: dict[str, Any]
    cached: bool = False

    @property
    def images(self) -> list[Path]:
        return sorted(self.folder.glob("[0-9][0-9][0-9][0-9].png"))


class CalibSource:
    """A :class:`vacc_deploy.calibration.CalibrationSource`: yields each sample as the network input
    (1, 3, H, W) float32, converted with the row's :class:`ModelSpec`. Iterable many times."""

    def __init__(self, calib: CalibSet, spec: ModelSpec) -> None:
        self.calib, self.spec = calib, spec
        self.paths = calib.images

    def __len__(self) -> int:
        return len(self.paths)

    def __iter__(self) -> Iterator[np.ndarray]:
        for path in self.paths:
            yield network_input(path, self.spec)


def network_input(path: Path, spec: ModelSpec) -> np.ndarray:
    """``to_network(read_image(path).rgb, spec)``, bit for bit, in fewer passes for an 8-bit
    3-channel file (what a calibration set holds): the same float32 operations (``u8 / 255``, then
    ``* value_range``) done once in the network's (1, 3, H, W) layout instead of through an HxWx3
    float image and two copies (on a 1080x1920 sample the conversion after decoding cost about as
    much CPU as the PNG decode). Anything else, and any error, takes the general path."""
    try:
        arr = cv2.imdecode(np.fromfile(str(path), dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except (OSError, cv2.error):
        arr = None
    if arr is None or arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        return to_network(read_image(path).rgb, spec)  # raises ImageError where that is due
    planes = arr.transpose(2, 0, 1)  # OpenCV's BGR planes
    if spec.channel_order != "BGR":
        planes = planes[::-1]
    out = np.empty((1, *planes.shape), np.float32)
    out[0] = planes
    out /= np.float32(255)
    if spec.value_range != 1:
        out *= np.float32(spec.value_range)
    return out


def _crop(rgb: np.ndarray, h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    ih, iw = rgb.shape[:2]
    if ih < h or iw < w:
        rgb = np.pad(rgb, ((0, max(0, h - ih)), (0, max(0, w - iw)), (0, 0)), mode="reflect")
    y = int(rng.integers(0, rgb.shape[0] - h + 1))
    x = int(rng.integers(0, rgb.shape[1] - w + 1))
    return rgb[y : y + h, x : x + w], [y, x, h, w]


def _sample(rgb: np.ndarray, mode: str, hw: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    if mode == "resize":
        return cv2.resize(rgb, (hw[1], hw[0]), interpolation=cv2.INTER_AREA), []
    return _crop(rgb, hw[0], hw[1], rng)


def _degrade(rgb: np.ndarray, scale: int, rng: np.random.Generator) -> np.ndarray:
    from vacc_deploy.degradation import degrade_bsrgan

    lq, _ = degrade_bsrgan(rgb, max(scale, 1), rng)
    return lq


def _load(path: Path, skipped: list[str], hw: tuple[int, int] | None) -> np.ndarray | None:
    """The image's RGB, or None (with a warning, listed in ``skipped``) when it is unreadable or
    (``hw`` given) smaller than half the input size in either dimension (its samples would be mostly
    padding)."""
    try:
        rgb = read_image(path).rgb
        if hw is not None and (2 * rgb.shape[0] < hw[0] or 2 * rgb.shape[1] < hw[1]):
            raise ImageError(f"image {path} is {rgb.shape[0]}x{rgb.shape[1]}, smaller than half the "
                             f"{hw[0]}x{hw[1]} input")
        return rgb
    except ImageError as exc:
        log.warning("skipping image: %s", exc)
        skipped.append(str(path))
        return None


def _as_is(rgb: np.ndarray) -> np.ndarray:
    return rgb


def _usable(order: list[Path], skipped: list[str], hw: tuple[int, int] | None) -> Iterator[tuple[Path, np.ndarray]]:
    """(path, RGB) of ``order`` in turn, again and again; an unusable image (:func:`_load`) is
    dropped the first time it is met. Ends when no image is left."""
    order, i = list(order), 0
    while order:
        path = order[i % len(order)]
        rgb = _load(path, skipped, hw)
        if rgb is None:
            order.remove(path)
            continue
        yield path, rgb
        i += 1


def _mosaic(images: Iterator[tuple[Path, np.ndarray]], hw: tuple[int, int], rng: np.random.Generator,
            prepare: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray | None, list[dict[str, Any]]]:
    """An ``hw`` canvas filled with native-scale random crops of the next images (module docstring),
    each passed through ``prepare`` first; (None, tiles) when the images run out. Tiles record their
    source, crop box [y, x, h, w] in it and position [y, x] on the canvas."""
    canvas: np.ndarray | None = None
    tiles: list[dict[str, Any]] = []
    y = 0
    while y < hw[0]:
        x, band = 0, 0
        while x < hw[1]:
            path, rgb = next(images, (None, None))
            if path is None or rgb is None:
                return None, tiles
            rgb = prepare(rgb)
            band = band or min(rgb.shape[0], hw[0] - y)
            if rgb.shape[0] < band:
                rgb = np.pad(rgb, ((0, band - rgb.shape[0]), (0, 0), (0, 0)), mode="symmetric")
            tile, box = _crop(rgb, band, min(rgb.shape[1], hw[1] - x), rng)
            if canvas is None:
                canvas = np.empty((*hw, rgb.shape[2]), rgb.dtype)
            canvas[y : y + band, x : x + tile.shape[1]] = tile
            tiles.append({"source": path.name, "box": box, "at": [y, x]})
            x += tile.shape[1]
        y += band
    return canvas, tiles


def _auto_mode(paths: list[Path], hw: tuple[int, int]) -> str:
    """``crop`` if some image is at least half ``hw`` in both dimensions (unreadable files do not
    count; images are decoded in turn until one qualifies), else ``mosaic``."""
    for path in paths:
        size = _image_hw(path)
        if size is not None and 2 * size[0] >= hw[0] and 2 * size[1] >= hw[1]:
            return "crop"
    return "mosaic"


def _image_hw(path: Path) -> tuple[int, int] | None:
    try:
        return read_image(path).rgb.shape[:2]
    except ImageError:
        return None


def _fill(tmp: Path, paths: list[Path], num: int, mode: str, hw: tuple[int, int], seed: int,
          degrade: str, scale: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Write ``num`` samples into ``tmp`` (cycling over a seeded shuffle of ``paths``)."""
    from vacc_deploy.imaging.io import write_image

    order = [paths[i] for i in np.random.default_rng(seed).permutation(len(paths))]
    samples: list[dict[str, Any]] = []
    skipped: list[str] = []
    images = _usable(order, skipped, None if mode == "mosaic" else hw)
    # warnings (skipped images) go on their own line above the bar
    with logging_redirect_tqdm(), progress_bar(total=num, desc="calibration set", unit="img") as bar:
        while len(samples) < num:
            rng = np.random.default_rng([seed, len(samples)])
            prepare = functools.partial(_degrade, scale=scale, rng=rng) if degrade == "bsrgan" else _as_is
            if mode == "mosaic":
                sample, tiles = _mosaic(images, hw, rng, prepare)
                if sample is None:
                    break
                entry: dict[str, Any] = {"source": tiles[0]["source"], "box": [], "tiles": tiles}
            else:
                path, rgb = next(images, (None, None))
                if path is None or rgb is None:
                    break
                sample, box = _sample(prepare(rgb), mode, hw, rng)
                entry = {"source": path.name, "box": box}
            write_image(tmp / f"{len(samples):04d}.png", to_uint(sample, 8, "round"))
            samples.append({"index": len(samples), **entry})
            bar.update(1)
    return samples, skipped


def _folder_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for png in sorted(folder.glob("[0-9][0-9][0-9][0-9].png")):
        h.update(png.read_bytes())
    return h.hexdigest()


def make_calibration_set(row: str, spec: ModelSpec, images: Path, shape: tuple[int, ...], *,
                         num: int = DEFAULT_CALIB_NUM, seed: int = DEFAULT_CALIB_SEED,
                         mode: str = DEFAULT_CALIB_MODE, degrade: str = DEFAULT_DEGRADATION,
                         workdir: Path | None = None, force: bool = False) -> CalibSet:
    """Build (or reuse) a calibration set of ``num`` samples of the model's input size.

    Raises DatasetError for a missing/empty folder or when no image is readable; UsageError for a
    bad mode/number. In ``resize`` mode a folder with fewer images than ``num`` gives fewer samples
    (with a warning); in ``crop`` mode several crops come from each image, in ``mosaic`` mode each
    sample holds crops of several images (its manifest entry lists them under ``tiles``). Unreadable
    images, and outside ``mosaic`` mode images smaller than half the input size, are skipped with a
    warning and counted in the manifest.
    A cached set is verified (file sizes, sha256) and rebuilt when damaged; ``force`` rebuilds it.
    """
    if mode not in CALIB_MODES or degrade not in DEGRADATIONS or num < 1:
        raise UsageError(f"calibration: mode must be one of {CALIB_MODES}, degrade one of {DEGRADATIONS}, num >= 1")
    paths = images_at(images, "calib_images")
    hw = (int(shape[2]), int(shape[3]))
    if mode == "auto":
        mode = _auto_mode(paths, hw)
        if mode == "mosaic":
            log.warning("no image in %s is half the %dx%d input: calibration samples are mosaics of native-scale "
                        "crops of several images", images, *hw)
    if mode == "resize" and len(paths) < num:
        log.warning("only %d images in %s for --num %d: using all of them", len(paths), images, num)
        num = len(paths)
    digests = [[p.name, artifacts.file_digest(p)] for p in paths]
    key = artifacts.stage_key({"format": CALIB_FORMAT, "sources": digests, "num": num, "seed": seed,
                               "mode": mode, "hw": hw, "degrade": degrade, "spec": spec.to_json()})
    folder = artifacts.row_workdir(row, workdir) / "calib" / f"{mode}-{hw[0]}x{hw[1]}-n{num}-s{seed}-{key}"
    with stage_lock(folder):  # a concurrent identical set finishes first; this one reuses it
        m = reusable(folder, force)
        if m is not None:
            return CalibSet(folder, m["num"], m["sha256"], m, cached=True)
        with artifacts.staged_dir(folder) as tmp:
            samples, skipped = _fill(tmp, paths, num, mode, hw, seed, degrade, spec.scale)
            if not samples:
                small = "" if mode == "mosaic" else (
                    f", or smaller than half the {hw[0]}x{hw[1]} input: calibration mode 'mosaic' tiles "
                    "native-scale crops of small images into the input")
                raise DatasetError(f"{images}: none of the {len(paths)} images could be used (unreadable{small})",
                                   option="calib_images")
            manifest = {"row": row, "mode": mode, "shape": list(shape), "num": len(samples), "seed": seed,
                        "degrade": degrade, "images": str(images), "sources": digests, "samples": samples,
                        "skipped": skipped, "n_skipped": len(skipped), "sha256": _folder_hash(tmp), "key": key,
                        "files": file_records(tmp)}
            artifacts.atomic_write_json(tmp / "manifest.json", manifest)
    return CalibSet(folder, manifest["num"], manifest["sha256"], manifest)
