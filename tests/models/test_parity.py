"""Our re-implementations reproduce the official implementations' outputs (parity golden files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

from tests.models.conftest import parity_file, parity_key
from vacc_deploy.config import available_rows, load_row
from vacc_deploy.models import row_spec

REL_TOL = 1e-4  # of the reference output range, as suggested by parity/README.md


@pytest.mark.parametrize("row", available_rows())
def test_parity(row: str, parity_dir: Path, parity_model: Callable[[str], torch.nn.Module]) -> None:
    data = np.load(parity_file(parity_dir, row))
    ref = data["output"]
    model = parity_model(row)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.no_grad():
            ours = model(torch.from_numpy(data["input"])).numpy()
    finally:
        torch.set_num_threads(threads)
    assert ours.shape == ref.shape
    span = float(ref.max() - ref.min())
    diff = float(np.abs(ours.astype(np.float64) - ref).max())
    assert diff <= REL_TOL * span, f"{row}: max|ours-ref| = {diff:.3e} > {REL_TOL:g} * {span:.4g}"


@pytest.mark.parametrize("row", available_rows())
def test_spec_matches_parity_conventions(row: str, layouts: dict[str, Any]) -> None:
    """scale, channel order and value range declared by the family agree with the parity record."""
    rec = layouts[parity_key(row)]
    spec = row_spec(load_row(row))
    in_hw, out_hw = rec["input_shape"][2:], rec["output_shape"][2:]
    assert [h * spec.scale for h in in_hw] == out_hw
    conv = rec["input_convention"]
    assert spec.channel_order == conv["channel_order"]
    assert spec.value_range == (255.0 if conv["value_range"] == "[0,255]" else 1.0)
    assert spec.check_input_hw(*in_hw) is None


def test_lesrcnn_accepts_and_ignores_scale_argument(
    parity_dir: Path, parity_model: Callable[[str], torch.nn.Module]
) -> None:
    """The official call is ``forward(x, scale)``; ours takes an optional, ignored scale."""
    x = torch.from_numpy(np.load(parity_dir / "lesrcnn_x2.npz")["input"])[..., :16, :16]
    model = parity_model("lesrcnn_x2")
    with torch.no_grad():
        assert torch.equal(model(x, 2), model(x))
