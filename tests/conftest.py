"""Shared fixtures. Data that must not be committed (official weights, datasets, parity files) is read
from ``../shared/data`` beside the checkout (or ``$VACC_DEPLOY_SHARED``); tests that need it skip,
saying why, when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("VACC_DEPLOY_SHARED", REPO.parent / "shared"))
DATA = SHARED / "data"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not found: {path} (set VACC_DEPLOY_SHARED to the shared folder)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (skips when absent)."""
    return _need(DATA)


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    """``../shared/data/parity`` (skips when absent)."""
    return _need(DATA / "parity")


@pytest.fixture(scope="session")
def weights_dir() -> Path:
    """``../shared/data/weights`` (skips when absent)."""
    return _need(DATA / "weights")


@pytest.fixture(scope="session")
def images_dir() -> Path:
    """``../shared/data/images`` (skips when absent)."""
    return _need(DATA / "images")
