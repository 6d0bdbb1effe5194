"""Quick int8 fidelity probe: quantize a cached fp32 export with cached calibration ranges in several
ways and report each variant's fidelity PSNR to fp32 on centre crops of an evaluation set.

Cheaper than `vacc-deploy eval` (one model-sized crop per image instead of a tiled image), so the
numbers are for comparing variants with each other, not for the accuracy tables. Usage:

    python scripts/int8_fidelity_probe.py MODEL.onnx RANGES.json DATASET_DIR OUT_DIR VARIANT...

VARIANT is ``name:key=value,...`` with keys ``bits`` (8 or 16 activation bits), ``pc`` (1/0
per-channel weights), ``int8`` (regex: only matching convs int8, the rest float), ``float``
(regex: matching convs float), ``ranges`` (``calib`` or ``minmax``: the calibration's min/max stats), ``ops`` (``compute``, the build's
default, or ``all``: `--int8-ops`).
The first and last convs stay float (the default build's float edges).
"""
from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort

from vacc_deploy.backends.ort.session import session_options
from vacc_deploy.backends.ort.layers import float_activations
from vacc_deploy.calibration import INT8_OP_SETS, quantize_int8


def _crops(dataset: Path, size: int) -> np.ndarray:
    files = sorted(p for p in dataset.rglob("*_LR.png") if "SRF_4" in str(p)) or sorted(dataset.rglob("*.png"))
    out = []
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.float32) / 255.0
        h, w = img.shape[:2]
        if min(h, w) < size:  # e.g. Set5 woman x4 (57 px wide): pad by reflection
            img = cv2.copyMakeBorder(img, 0, max(0, size - h), 0, max(0, size - w), cv2.BORDER_REFLECT_101)
            h, w = img.shape[:2]
        y, x = (h - size) // 2, (w - size) // 2
        out.append(img[y:y + size, x:x + size].transpose(2, 0, 1))
    return np.stack(out)


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), session_options(2, accurate_int8=True), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])


def _psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak * peak / mse)


def main(argv: list[str]) -> None:
    model, ranges_path, dataset, out = Path(argv[0]), Path(argv[1]), Path(argv[2]), Path(argv[3])
    out.mkdir(parents=True, exist_ok=True)
    result = json.loads(ranges_path.read_text())["result"]
    graph = onnx.load(str(model), load_external_data=False)
    convs = [n.name for n in graph.graph.node if n.op_type == "Conv"]
    size = graph.graph.input[0].type.tensor_type.shape.dim[2].dim_value
    x = _crops(dataset, size)
    ref = _run(model, x)
    peak = 255.0 if ref.max() > 2 else 1.0
    for spec in argv[4:]:
        name, _, kv = spec.partition(":")
        o = dict(p.split("=", 1) for p in kv.split(",") if p)
        floats = {convs[0], convs[-1]}
        if "int8" in o:
            floats |= {c for c in convs if not re.search(o["int8"], c)}
        if "float" in o:
            floats |= {c for c in convs if re.search(o["float"], c)}
        names = [c for c in convs if c in floats]
        ranges = {k: tuple(v) for k, v in result["ranges"].items()}
        if o.get("ranges") == "minmax":
            ranges = {k: (min(0.0, s["min"]), max(0.0, s["max"])) for k, s in result["stats"].items() if k in ranges}
        t0 = time.perf_counter()
        qpath = out / f"{name}.onnx"
        quantize_int8(model, qpath, ranges, per_channel=o.get("pc", "1") == "1",
                      nodes_to_exclude=names + float_activations(graph, names),
                      activation_bits=int(o.get("bits", 8)), op_types=INT8_OP_SETS[o.get("ops", "compute")])
        y = _run(qpath, x)
        print(f"{name:24s} float_convs={len(names):3d}/{len(convs)} fidelity={_psnr(np.clip(y, 0, peak), np.clip(ref, 0, peak), peak):6.2f} dB"
              f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
        qpath.unlink()


if __name__ == "__main__":
    main(sys.argv[1:])
