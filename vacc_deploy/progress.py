"""Progress bars for long loops (tqdm on stderr), shown only where they help: when stderr is a
terminal and the ``vacc_deploy`` logger is enabled for INFO (the CLI's ``--quiet`` raises it). A log
file or a pipe gets no carriage returns or escape codes; the pipeline logs one line per stage
instead. Torch-free."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

_LOG = logging.getLogger("vacc_deploy")


def interactive() -> bool:
    """True when progress bars are shown: stderr is a terminal and INFO messages are enabled."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty()) and _LOG.isEnabledFor(logging.INFO)


def progress_bar(iterable: Iterable[Any] | None = None, *, disable: bool = False, **kwargs: Any) -> tqdm:
    """A ``tqdm`` bar on stderr, disabled (a no-op that still iterates) unless :func:`interactive`."""
    return tqdm(iterable, file=sys.stderr, disable=disable or not interactive(), **kwargs)
