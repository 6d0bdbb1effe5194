"""Hypothesis check for docs/accuracy.md (not a product feature): the ``vacc`` numerics with ONNX
DepthToSpace (PixelShuffle) treated like TVM's reshape/transpose, i.e. quantized and passed through,
as if the vendor's fork annotated ``nn.depth_to_space`` (the seed says PixelShuffle runs only in int8
on the card; upstream TVM leaves it float). Runs ``vacc-deploy`` with that one rule changed.

Usage: python scripts/vacc_pixelshuffle_check.py eval ROW ... --numerics vacc --workdir DIR
DIR must not hold builds made without this script: build caches do not know about the change.
"""

from __future__ import annotations

import sys

from vacc_deploy.cli import main
from vacc_deploy.backends.ort import tvm_rules

if __name__ == "__main__":
    tvm_rules._PASS_THROUGH.add("DepthToSpace")
    sys.exit(main(sys.argv[1:]))
