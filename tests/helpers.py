"""Test helpers: a local HTTP file server on 127.0.0.1, row-YAML variants, noise images."""

from __future__ import annotations

import contextlib
import functools
import http.server
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from vacc_deploy.config import CONFIG_DIR


@contextlib.contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """Serve ``folder`` over HTTP on 127.0.0.1 (a free port); yields the base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def closed_port_url(name: str) -> str:
    """A URL on 127.0.0.1 where nothing listens (a download there fails at once, like no network)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{name}"


def row_variant(tmp: Path, row: str, **changes: object) -> Path:
    """Write a copy of a shipped row YAML with top-level or dotted-key changes; returns its path."""
    data = yaml.safe_load((CONFIG_DIR / f"{row}.yaml").read_text())
    for dotted, value in changes.items():
        node = data
        keys = dotted.split("__")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    path = tmp / f"{row}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def load_from_bytes(data: bytes, name: str, load: Callable[[Path], Any], error: type[Exception]) -> Any:
    """``load`` on a temporary file ``name`` holding ``data``; None when it raised ``error``, whose
    message must be one line naming the file (the fuzz tests' contract for every reader)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            return load(path)
        except error as exc:
            assert str(path) in str(exc) and "\n" not in str(exc)  # one line naming the file
            return None


def noise_images(folder: Path, n: int = 3, hw: tuple[int, int] = (48, 40), seed: int = 0) -> Path:
    """``folder`` with ``n`` uniform-noise 8-bit PNGs ``0.png`` ... (``hw`` pixels, one generator
    seeded ``seed`` drawn in turn): a small calibration folder for builds in tests."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 256, (*hw, 3), dtype=np.uint8))
    return folder
