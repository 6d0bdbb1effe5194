"""Which quantized op types cost an int8 build its fidelity: re-quantizes a row's fp32 export with
the ranges of an existing int8 build, quantizing only some op types (edge convs kept float), and
prints the fidelity PSNR of each variant against fp32 on one image.

Usage: python scripts/diagnose_int8_ops.py BUILD_DIR IMAGE [--scale 3]
  BUILD_DIR: an int8 build folder (work/<row>/build/int8-...; holds ranges.json and manifest.json)
  IMAGE: an LR image (placed at the top-left of the fixed input, the rest zero)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from vacc_deploy.backends.ort.session import OrtSession
from vacc_deploy.imaging.io import read_image
from vacc_deploy.imaging.processing import to_network
from vacc_deploy.calibration import quantize_int8
from vacc_deploy.spec import ModelSpec

VARIANTS = [
    ("every op type (--int8-ops all)", None),
    ("Conv only", ("Conv",)),
    ("Conv + Relu", ("Conv", "Relu")),
    ("Conv + Relu + Add", ("Conv", "Relu", "Add")),
    ("Conv + Add", ("Conv", "Add")),
    ("Conv + LeakyRelu", ("Conv", "LeakyRelu")),
    ("Conv + DepthToSpace", ("Conv", "DepthToSpace")),
    ("Conv + Add + LeakyRelu", ("Conv", "Add", "LeakyRelu")),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build", type=Path)
    ap.add_argument("image", type=Path)
    args = ap.parse_args()
    manifest = json.loads((args.build / "manifest.json").read_text())
    fp32 = Path(manifest["input_model"])
    ranges = {k: tuple(v) for k, v in json.loads((args.build / "ranges.json").read_text()).items()}
    ref_sess = OrtSession(fp32)
    spec = ref_sess.spec or ModelSpec(scale=1)
    n, c, h, w = ref_sess.input_shape
    rgb = read_image(args.image).rgb[:h, :w]
    x = np.zeros((n, c, h, w), np.float32)
    x[:, :, : rgb.shape[0], : rgb.shape[1]] = to_network(rgb, spec)
    s = spec.scale
    crop = (slice(None), slice(None), slice(0, rgb.shape[0] * s), slice(0, rgb.shape[1] * s))
    ref = np.clip(ref_sess.run(x)[crop] / spec.value_range, 0, 1)
    print(f"{fp32}: fidelity PSNR vs fp32 on {args.image.name}, float layers {manifest['float_layers']}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, ops in VARIANTS:
            out = Path(tmp) / "q.onnx"
            kw = {"op_types": ops} if ops else {}
            quantize_int8(fp32, out, ranges, per_channel=True, nodes_to_exclude=manifest["float_layers"], **kw)
            y = np.clip(OrtSession(out).run(x)[crop] / spec.value_range, 0, 1)
            print(f"  {name:<32} {10 * np.log10(1 / np.mean((y - ref) ** 2)):6.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
