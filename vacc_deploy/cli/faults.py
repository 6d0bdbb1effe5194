"""Signals and environment faults at the command line: SIGTERM is handled like SIGINT (the stage
being written is discarded, a one-line message, exit 143), and file-system and memory failures the
library could not foresee get one line instead of a traceback."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

EXIT_SIGTERM = 128 + signal.SIGTERM  # 143, what a shell reports for a process ended by SIGTERM


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM (what ``timeout``, docker and Kubernetes send), so that
    every ``finally`` and staged folder cleans up as on Ctrl-C."""


def _raise_terminated(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the cleanup
    raise Terminated()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`Terminated` (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def describe_os_error(exc: OSError) -> str | None:
    """One line for an OSError about a path (read-only file system, no space, permission), or None
    when it names no path (then it is treated as a bug)."""
    if not exc.filename:
        return None
    return f"{exc.filename}: {exc.strerror or exc}"


def describe_memory_error(exc: BaseException) -> str | None:
    """One line for an allocation failure (MemoryError, or the runtimes' "Failed to allocate")."""
    text = str(exc)
    if isinstance(exc, MemoryError) or "Failed to allocate" in text or "can't allocate memory" in text:
        return "out of memory (try a smaller --shape, fewer --threads or a smaller image)"
    return None


def interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The SIGINT/SIGTERM interrupt an exception was raised while handling, if any: a signal that
    lands inside a C extension's import surfaces as ``ImportError: initialization failed``."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, KeyboardInterrupt):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None
