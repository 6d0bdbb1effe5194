#!/usr/bin/env bash
# Create ./.venv and install vacc-deploy with everything needed to export, run and test.
# torch is pinned explicitly (a bare `torch` requirement would pull several GB of CUDA packages).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[export,test,openvino]"
echo "installed: $(.venv/bin/vacc-deploy --version)"
