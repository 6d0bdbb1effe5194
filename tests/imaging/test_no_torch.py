"""The imaging package must stay torch-free."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_imaging_does_not_import_torch() -> None:
    code = ("import sys, vacc_deploy.imaging.io, vacc_deploy.imaging.resize, "
            "vacc_deploy.imaging.color, vacc_deploy.imaging.metrics, vacc_deploy.imaging.tiling, "
            "vacc_deploy.imaging.datasets; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True, env={"PYTHONPATH": str(REPO)})
    assert out.stdout.strip() == "False"
