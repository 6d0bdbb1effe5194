"""Fixtures for the model tests: the parity layouts and a loader that builds a row with the weights
its parity file was made with (synthetic-v1, or the real checkpoint)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from vacc_deploy.config import load_row
from vacc_deploy.models import create_model, load_checkpoint

#: Rows that share another row's parity record (same architecture and synthetic weights).
PARITY_ALIASES = {"bsrnet_x4": "bsrgan_x4"}


def parity_key(row: str) -> str:
    """The parity file / layouts.json record that serves ``row``."""
    return PARITY_ALIASES.get(row, row)


@pytest.fixture(scope="session")
def layouts(parity_dir: Path) -> dict[str, Any]:
    """``layouts.json`` of the parity data, keyed by row."""
    return json.loads((parity_dir / "layouts.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def parity_model(
    layouts: dict[str, Any], weights_dir: Path
) -> Callable[[str], torch.nn.Module]:
    """``parity_model(row)``: the row's module, with the weights recorded for its parity file."""

    def make(row: str) -> torch.nn.Module:
        weights = layouts[parity_key(row)]["weights"]
        if weights == "synthetic-v1":
            return create_model(row, "synthetic")
        state = load_checkpoint(weights_dir / weights["file"], load_row(row))
        return create_model(row, state)

    return make
