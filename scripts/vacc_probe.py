"""Score ``vacc``-numerics variants of a cached fp32 export with cached calibration ranges, without
the build cache: each variant is emulated in memory and scored (standard protocol, Y PSNR drop
against fp32) on a dataset. For exploring the vamc settings; the numbers in docs come from
``vacc-deploy eval``/``build`` runs. Usage:

    python scripts/vacc_probe.py MODEL.onnx DATASET [--validation CALIB_DIR] VARIANT...

``--validation DIR`` scores the search's validation pairs of DIR (pipeline/search.py) instead of a
dataset's pairs. VARIANT is ``RANGES.json:weight_scale:pc|pt:skip`` with ``skip`` a
``+``-separated list of 0-based ``skip_conv_layers`` indices (empty: none), e.g.
``work/lesrcnn_x2/ranges/percentile-XXXX.json:max:pc:0+1+24+25``.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import onnx

from vacc_deploy.backends.ort.session import OrtSession
from vacc_deploy.evaluation.protocols import Candidate, evaluate
from vacc_deploy.imaging.datasets import find_pairs
from vacc_deploy.evaluation.upscaler import Upscaler
from vacc_deploy.pipeline.search import validation_pairs
from vacc_deploy.backends.ort.vacc_numerics import emulate, symmetric_thresholds, tvm_conv_order


def _cand(path: Path, label: str) -> Candidate:
    sess = OrtSession(path)
    return Candidate(label, None, "onnxruntime", Upscaler(sess, sess.spec), sess.input_shape[2:])


def main(argv: list[str]) -> None:
    model_path, dataset = Path(argv[0]), Path(argv[1])
    rest = argv[2:]
    model = onnx.load(str(model_path))
    order = tvm_conv_order(model)
    fp32 = _cand(model_path, "fp32")
    scale = fp32.upscaler.spec.scale
    if rest and rest[0] == "--validation":
        pairs, rest = validation_pairs(Path(rest[1])), rest[2:]
    else:
        pairs = find_pairs(dataset, scale)
    tmp = Path(tempfile.mkdtemp())
    cands = [fp32]
    for i, spec in enumerate(rest):
        ranges_path, ws, pc, skip = spec.split(":")
        ranges = json.loads(Path(ranges_path).read_text())["result"]["ranges"]
        skipped = [order[int(k)] for k in skip.split("+") if k]
        emulated, _ = emulate(model, symmetric_thresholds(ranges), weight_scale=ws, per_channel=pc == "pc",
                              float_convs=skipped)
        onnx.save(emulated, str(tmp / f"v{i}.onnx"))
        cands.append(_cand(tmp / f"v{i}.onnx", f"v{i}"))
    res = evaluate(pairs, cands, row=model_path.parent.name, dataset=dataset, scale=scale, progress=False)
    ref = res["results"][0]["psnr"]
    print(f"fp32 {ref:.3f} dB on {len(pairs)} images")
    for spec, r in zip(rest, res["results"][1:]):
        print(f"{r['psnr'] - ref:+.3f}  {Path(spec.split(':')[0]).name}:{':'.join(spec.split(':')[1:])}")


if __name__ == "__main__":
    main(sys.argv[1:])
