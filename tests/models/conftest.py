"""Fixtures for the model tests: the parity layouts and a loader that builds a row with the weights
its parity file was made with (synthetic-v1, or the real checkpoint).

The Real-ESRGAN rows' parity files (``parity/realesrgan/<row>.npz``, the ncnn release models' own
fp32 outputs) have no ``layouts.json`` record; :func:`realesrgan_record` makes one from what
``../shared/data/README.md`` states (RGB in [0,1], the official checkpoint file) and from the files
themselves (shapes; the checkpoint's key layout, mapped by the family's ``convert_checkpoint``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

from vacc_deploy.config import load_row
from vacc_deploy.models import create_model, load_checkpoint

#: Rows that share another row's parity record (same architecture and synthetic weights).
PARITY_ALIASES = {"bsrnet_x4": "bsrgan_x4"}
#: Rows whose parity file is ``parity/realesrgan/<row>.npz`` (real Real-ESRGAN weights).
REALESRGAN_ROWS = ("realesrgan_x4plus", "realesrgan_x4plus_anime_6b", "realesr_animevideov3_x4")


def parity_key(row: str) -> str:
    """The parity file / layouts.json record that serves ``row``."""
    return PARITY_ALIASES.get(row, row)


def parity_file(parity_dir: Path, row: str) -> Path:
    """The ``.npz`` parity file that serves ``row``."""
    if row in REALESRGAN_ROWS:
        return parity_dir / "realesrgan" / f"{row}.npz"
    return parity_dir / f"{parity_key(row)}.npz"


def realesrgan_record(row: str, parity_dir: Path, weights_dir: Path) -> dict[str, Any]:
    """A layouts.json-style record for a Real-ESRGAN row (see the module docstring)."""
    config = load_row(row)
    file = config.weights.official.file
    data = np.load(parity_file(parity_dir, row))
    state = load_checkpoint(weights_dir / file, config)
    layout = [[k, list(v.shape)] for k, v in state.items()]
    return {"weights": {"file": file}, "input_shape": list(data["input"].shape),
            "output_shape": list(data["output"].shape),
            "input_convention": {"channel_order": "RGB", "value_range": "[0,1]"},
            "state_dict": layout, "n_params": sum(int(np.prod(s)) for _, s in layout)}


@pytest.fixture(scope="session")
def layouts(parity_dir: Path, weights_dir: Path) -> dict[str, Any]:
    """``layouts.json`` of the parity data, keyed by row, plus the Real-ESRGAN rows' records."""
    records = json.loads((parity_dir / "layouts.json").read_text(encoding="utf-8"))
    for row in REALESRGAN_ROWS:
        records[row] = realesrgan_record(row, parity_dir, weights_dir)
    return records


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
