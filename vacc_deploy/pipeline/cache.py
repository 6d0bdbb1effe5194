"""Result caching for the pipeline's later stages (eval, benchmark, report): a JSON result stored
under a key of its inputs; a stage whose key is found is reused and not run again. Torch-free."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vacc_deploy import artifacts

log = logging.getLogger(__name__)


@dataclass
class StageRecord:
    """How a stage went: ``status`` "done" (ran now), "reused" (inputs unchanged) or "skipped" (this
    run has no such stage: no int8 build, no benchmark asked for), seconds."""

    stage: str
    status: str
    seconds: float
    detail: str = ""


def cached_json(path: Path, compute: Callable[[], Any]) -> tuple[Any, bool]:
    """Return (result, reused): the JSON at ``path`` if present and readable, else ``compute()``
    written there atomically."""
    if path.is_file():
        try:
            return artifacts.read_json(path), True
        except ValueError:  # damaged on disk (e.g. truncated): compute it again
            log.warning("cached %s is unreadable; computing it again", path)
    result = compute()
    artifacts.atomic_write_json(path, result)
    return result, False


def timed(stage: str, fn: Callable[[], tuple[Any, bool]]) -> tuple[Any, StageRecord]:
    """Run ``fn`` (returning (result, reused)) and record its time and status."""
    t0 = time.perf_counter()
    result, reused = fn()
    return result, StageRecord(stage, "reused" if reused else "done", time.perf_counter() - t0)
