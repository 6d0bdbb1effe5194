"""Makers of bad inputs for tests/test_bad_input.py: images (good, huge-header, tiny, cut),
checkpoints (garbage, truncated, code-executing pickle) and a finder of half-written leftovers."""

from __future__ import annotations

import io
import os
import pickle
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

LEFTOVERS = ("*.partial", "*.tmp", "*.lock")


def png(path: Path, hw: tuple[int, int] = (60, 80), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 256, (*hw, 3), dtype=np.uint8), (5, 5), 0)
    cv2.imwrite(str(path), img)
    return path


def huge_png(path: Path) -> Path:
    """A PNG whose header claims 100000x100000 pixels (with a tiny payload)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 99))
                     + chunk(b"IEND", b""))
    return path


def folder(root: Path, name: str, extra: dict[str, Callable[[Path], Path]] | None = None, n: int = 3) -> Path:
    """``root/name`` with ``n`` good 60x80 PNGs and the ``extra`` files (name -> maker)."""
    d = root / name
    d.mkdir()
    for i in range(n):
        png(d / f"good{i}.png", seed=i)
    for fname, make in (extra or {}).items():
        make(d / fname)
    return d


def leftovers(*folders: Path) -> list[Path]:
    return [p for f in folders if f.exists() for pat in LEFTOVERS for p in f.rglob(pat)]


def files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def evil_pickle(path: Path) -> Path:
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {path.parent / 'PWNED'}",))
    path.write_bytes(pickle.dumps(Evil()))
    return path


def truncated_zip(path: Path) -> Path:
    import torch

    buf = io.BytesIO()
    torch.save({"w": torch.zeros(64, 64)}, buf)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def cut(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[:200])
    return path
