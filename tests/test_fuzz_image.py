"""Property-based fuzzing of the image reader: valid files of every supported format, mutated
(bytes overwritten, truncated, header fields changed), and random bytes either decode into a valid
:class:`Image` or raise ImageError naming the file. Bounded (max_examples) so the suite stays fast."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import load_from_bytes
from vacc_deploy.errors import ImageError
from vacc_deploy.imaging.io import Image, read_image

FUZZ = settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def _encoded(ext: str, dtype: type, channels: int) -> bytes:
    rng = np.random.default_rng(0)
    top = 65535 if dtype == np.uint16 else 255
    arr = rng.integers(0, top + 1, (12, 10, channels) if channels > 1 else (12, 10)).astype(dtype)
    ok, buf = cv2.imencode(ext, arr)
    assert ok
    return buf.tobytes()


SAMPLES = {f"{ext}-{np.dtype(dt).name}-{c}": _encoded(ext, dt, c)
           for ext, dt, c in [(".png", np.uint8, 3), (".png", np.uint16, 4), (".png", np.uint8, 1),
                              (".jpg", np.uint8, 3), (".bmp", np.uint8, 3), (".tif", np.uint16, 3),
                              (".webp", np.uint8, 3)]}


def _read_bytes(data: bytes, suffix: str = ".png") -> Image | None:
    """read_image on a temporary file holding ``data``; None when it raised ImageError."""
    image = load_from_bytes(data, f"img{suffix}", read_image, ImageError)
    if image is None:
        return None
    h, w = image.rgb.shape[:2]
    assert image.rgb.shape == (h, w, 3) and image.rgb.dtype == np.float32 and h * w > 0
    assert np.all(np.isfinite(image.rgb)) and image.rgb.min() >= 0 and image.rgb.max() <= 1
    assert image.alpha is None or image.alpha.shape == (h, w)
    return image


@FUZZ
@given(name=st.sampled_from(sorted(SAMPLES)),
       edits=st.lists(st.tuples(st.integers(0, 10**6), st.binary(min_size=1, max_size=4)), min_size=1, max_size=4),
       cut=st.one_of(st.none(), st.integers(0, 10**6)))
def test_mutated_files(name: str, edits: list[tuple[int, bytes]], cut: int | None) -> None:
    data = bytearray(SAMPLES[name])
    for pos, blob in edits:
        i = pos % len(data)
        data[i:i + len(blob)] = blob
    if cut is not None:
        data = data[:cut % (len(data) + 1)]
    _read_bytes(bytes(data), "." + name.split("-")[0].lstrip("."))


@FUZZ
@given(blob=st.binary(max_size=400), suffix=st.sampled_from([".png", ".jpg", ".bmp", ".tif", ".webp", ""]))
def test_random_bytes(blob: bytes, suffix: str) -> None:
    _read_bytes(blob, suffix)


def _png(width: int, height: int, payload: bytes) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(payload)) + chunk(b"IEND", b"")


@FUZZ
@given(width=st.integers(1, 2**31 - 1), height=st.integers(1, 2**31 - 1), payload=st.binary(max_size=64))
def test_png_header_sizes(width: int, height: int, payload: bytes) -> None:
    """Headers claiming any size (up to 2^31 - 1 per side) with a tiny payload; sizes that would
    need gigabytes are refused by the decoder's pixel limit, not by running out of memory."""
    if 1 << 22 < width * height <= 1 << 30:
        height = max(1, (1 << 22) // width)  # within the limit but huge: decoding would allocate it
    _read_bytes(_png(width, height, payload))


def test_huge_header_names_the_file(tmp_path) -> None:
    path = tmp_path / "huge.png"
    path.write_bytes(_png(100000, 100000, b"\x00" * 100))
    with pytest.raises(ImageError, match=r"huge\.png.*larger than OpenCV decodes"):
        read_image(path)
