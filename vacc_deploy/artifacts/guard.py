"""Guards around stage folders: one process per stage at a time, stale partial folders removed,
cached folders verified before reuse. Torch-free, POSIX (``fcntl.flock``).

* Lock: a stage folder ``<parent>/<name>`` is built while holding an exclusive ``flock`` on
  ``<parent>/.<name>.lock`` (:func:`stage_lock`). A second process asking for the same stage waits,
  then finds the finished folder and reuses it. The lock file is removed on release; locks are
  re-entrant within one process.
* Stale partials: a stage writes into ``<parent>/.<name>.<random>.partial`` while holding the lock
  (see :func:`vacc_deploy.artifacts.staged_dir`). A process killed with SIGKILL leaves that folder
  behind; whoever next takes a lock in the same parent folder removes every partial folder whose
  stage lock no live process holds (:func:`sweep_stale`).
* Verification: a stage manifest records the size and sha256 of each file the stage wrote
  (:func:`file_records`); :func:`reusable` checks them before a cached folder is reused.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
_HELD: dict[Path, list[int]] = {}  # lock path -> [fd, depth] for the locks this process holds


def lock_path(final: Path) -> Path:
    """The lock file of the stage folder ``final``: ``.<name>.lock`` beside it (absolute path)."""
    final = Path(os.path.abspath(final))
    return final.parent / f".{final.name}.lock"


def _try_lock(path: Path, blocking: bool) -> int | None:
    """An fd holding an exclusive flock on ``path`` (created if missing), or None when another
    process holds it and ``blocking`` is False. Retries when the file was removed by the previous
    holder while this process waited (the lock must be on the file the path names now)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not blocking:
                os.close(fd)
                return None
            log.info("waiting for another process working on %s", path.name[1:-len(".lock")])
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def _unlock(path: Path, fd: int) -> None:
    try:
        os.unlink(path)  # still holding the lock: waiters notice the file is gone and retry
    except FileNotFoundError:
        pass
    os.close(fd)


@contextmanager
def stage_lock(final: Path) -> Iterator[None]:
    """Hold the exclusive lock of the stage folder ``final`` (blocking while another process holds
    it). On first acquisition in this process, stale partial folders in ``final.parent`` are
    removed (:func:`sweep_stale`). Creates ``final.parent``."""
    final = Path(final)
    path = lock_path(final)
    if path in _HELD:
        _HELD[path][1] += 1
        try:
            yield
        finally:
            _HELD[path][1] -= 1
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    fd = _try_lock(path, blocking=True)
    assert fd is not None
    _HELD[path] = [fd, 1]
    try:
        sweep_stale(final.parent)
        yield
    finally:
        del _HELD[path]
        _unlock(path, fd)


def _stage_name(partial: Path) -> str:
    """``.<name>.<random>.partial`` -> ``<name>`` (mkdtemp's random part has no dots)."""
    return partial.name[1:].rsplit(".", 2)[0]


def sweep_stale(parent: Path) -> list[Path]:
    """Remove the partial folders and lock files in ``parent`` that no live process holds (left by a
    killed run). A stage this process holds counts as stale for its own partials: they were made
    before this process took the lock. Returns the removed folders."""
    removed = []
    parent = Path(os.path.abspath(parent))
    for partial in sorted(parent.glob(".*.partial")):
        path = parent / f".{_stage_name(partial)}.lock"
        fd = None if path in _HELD else _try_lock(path, blocking=False)
        if path not in _HELD and fd is None:
            continue  # a live process is writing it
        shutil.rmtree(partial, ignore_errors=True)
        removed.append(partial)
        log.info("removed %s (left by an interrupted run)", partial)
        if fd is not None:
            _unlock(path, fd)
    for path in parent.glob(".*.lock"):
        if path not in _HELD and (fd := _try_lock(path, blocking=False)) is not None:
            _unlock(path, fd)
    return removed


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_records(folder: Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {"size": bytes, "sha256": hex}}`` of every file in ``folder`` but the
    manifest (what :func:`damage` checks on reuse)."""
    return {p.relative_to(folder).as_posix(): {"size": p.stat().st_size, "sha256": _sha256(p)}
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST}


def damage(folder: Path, manifest: dict[str, Any]) -> str | None:
    """Why the files of the finished stage folder do not match the manifest's ``files`` records
    (missing, other size, other sha256), or None when they match. Manifests written before the
    records existed have none and are not checked."""
    for name, rec in (manifest.get("files") or {}).items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != rec["size"]:
            return f"{name} has {path.stat().st_size} bytes, the manifest says {rec['size']}"
        if _sha256(path) != rec["sha256"]:
            return f"{name} does not match the sha256 in the manifest"
    return None


def reusable(folder: Path, force: bool = False) -> dict[str, Any] | None:
    """The manifest of the finished stage folder ``folder`` when it may be reused: it exists, is
    readable JSON and the files match their records. None otherwise (the caller rebuilds it);
    a damaged folder is reported as a warning. ``force``: always None."""
    path = Path(folder) / MANIFEST
    if force or not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.warning("cached %s has an unreadable manifest; rebuilding it", folder)
        return None
    reason = damage(Path(folder), manifest) if isinstance(manifest, dict) else "the manifest is not a mapping"
    if reason:
        log.warning("cached %s is damaged (%s); rebuilding it", folder, reason)
        return None
    return manifest
