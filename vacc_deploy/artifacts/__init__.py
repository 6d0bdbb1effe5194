"""Work-folder artifacts: atomic writes, stage folders that appear whole or not at all, cache keys
and manifests. Torch-free.

A stage writes into a temporary sibling folder and renames it into place only when everything in
it is written, so an interrupted run leaves no half-written stage behind (a rerun redoes it).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vacc_deploy.artifacts.guard import stage_lock

DEFAULT_WORKDIR = Path("work")


def row_workdir(row: str, workdir: Path | None = None) -> Path:
    """``<workdir>/<row>``; the default work folder is ``./work``."""
    return Path(workdir or DEFAULT_WORKDIR) / row


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON-serializable: {type(obj).__name__}")


def _finite(obj: Any) -> Any:
    """Replace non-finite floats by strings ("inf", "-inf", "nan") so the JSON stays standard."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def to_json(obj: Any) -> str:
    """Canonical, standard JSON (sorted keys, non-finite floats as strings)."""
    return json.dumps(_finite(obj), indent=2, sort_keys=True, default=_json_default) + "\n"


def umask_mode(directory: bool = False) -> int:
    """The mode ``open()`` / ``mkdir()`` would give a new file (0o666) or folder (0o777) under the
    process umask (0o644 / 0o755 under umask 022). ``tempfile`` creates 0o600 / 0o700 instead, so
    everything staged through a temporary name gets this mode before it is moved into place."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (an empty file: write it, or let a library overwrite
    it); when the body succeeds it gets the umask's mode and replaces ``path`` atomically; on any
    exception it is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``
    (mode from the umask, see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: Path, text: str) -> None:
    """Atomic text write (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    """Atomic JSON write (see :func:`to_json`)."""
    atomic_write_text(path, to_json(obj))


def read_json(path: Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


@contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``final``; on success it replaces ``final`` atomically.

    On any exception (KeyboardInterrupt included) the temporary folder is removed and ``final`` is
    left as it was. The stage's lock is held throughout (:func:`vacc_deploy.artifacts.guard.stage_lock`:
    another process building the same folder waits; partial folders left by killed runs are removed).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    with stage_lock(final):
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
        os.chmod(tmp, umask_mode(directory=True))  # mkdtemp makes 0o700
        try:
            yield tmp
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def stage_key(inputs: dict[str, Any]) -> str:
    """A short, stable hash of a stage's inputs (settings, input hashes, versions)."""
    blob = json.dumps(_finite(inputs), sort_keys=True, default=_json_default).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


_DIGESTS: dict[tuple[str, int, int, int], str] = {}
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (always read: for verifying downloads)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def file_digest(path: Path) -> str:
    """sha256 of a file (hex), memoised per process by the file's identity (absolute path, inode,
    size, modification time in ns): the stages of one command hash a weights file or an export once."""
    path = Path(path)
    st = path.stat()
    ident = (os.path.abspath(path), st.st_ino, st.st_size, st.st_mtime_ns)
    digest = _DIGESTS.get(ident)
    if digest is None:
        digest = _DIGESTS[ident] = sha256_file(path)
    return digest
