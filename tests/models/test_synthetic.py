"""The synthetic-v1 generator and our state_dict layouts match the official ones (layouts.json)."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest

from tests.models.conftest import parity_key
from vacc_deploy.config import available_rows, load_row
from vacc_deploy.models import family_of, row_params
from vacc_deploy.models.synthetic import synthetic_state_dict


def _build(row: str):
    config = load_row(row)
    return family_of(config).build(row_params(config))


@pytest.mark.parametrize("row", available_rows())
def test_state_dict_layout(row: str, layouts: dict[str, Any]) -> None:
    rec = layouts[parity_key(row)]
    ours = [[k, list(v.shape)] for k, v in _build(row).state_dict().items()]
    assert ours == rec["state_dict"]
    assert sum(int(np.prod(s)) for _, s in ours) == rec["n_params"]


@pytest.mark.parametrize("row", available_rows())
def test_synthetic_hashes(row: str, layouts: dict[str, Any]) -> None:
    rec = layouts[parity_key(row)]
    if rec["weights"] != "synthetic-v1":
        pytest.skip(f"{row}: parity made with a real checkpoint, no synthetic hashes recorded")
    syn = load_row(row).weights.synthetic
    assert (syn.seed_base, syn.std_factor) == (rec["seed_base"], rec["std_factor"])
    state = synthetic_state_dict(_build(row), syn.seed_base, syn.std_factor)
    ours = [[k, hashlib.sha256(t.numpy().astype("<f4").tobytes()).hexdigest()] for k, t in state.items()]
    assert ours == rec["synthetic_tensor_sha256"]
