"""Quick int8 fidelity probe: quantize a cached fp32 export in several ways and report each variant's
fidelity PSNR (RGB, outputs clipped to [0, 1]) to the fp32 output on model-sized crops.

Cheaper than `vacc-deploy eval` (one model-sized crop per image, no tiling), so the numbers compare
variants with each other; they are not accuracy-table numbers. Usage:

    python scripts/int8_fidelity_probe.py MODEL.onnx CALIB_DIR RANGES_DIR CROPS OUT_DIR VARIANT...

MODEL.onnx: a cached export (``<workdir>/<row>/export/*/model.onnx``); CALIB_DIR: its calibration
set (``<workdir>/<row>/calib/*/``, the PNG samples); RANGES_DIR: a folder holding that export's
cached ranges (``<method>-<key>.json`` from ``<workdir>/<row>/ranges/``, one per method: copy them
into their own folder when several calibration sets share ``ranges/``); CROPS: an ``.npy`` array
(N, 3, H, W) in [0, 1] or a folder of images (centre crops, reflect-padded when small). Screening
crops should not come from an evaluation set (Set5/Set14).

VARIANT is ``name:key=value,...`` with keys
  ``rng``   ranges: ``percentile`` (default), ``max``, ``kl_divergence`` (a file in RANGES_DIR);
  ``eq``    1: channel equalization first (vacc_deploy.backends.ort.equalize; its ranges are
            recalibrated on the equalized model with the CALIB_DIR samples, cached in OUT_DIR);
  ``w``     weights: ``nearest`` (default), ``gptq`` (vacc_deploy.backends.ort.weight_rounding;
            statistics from the first 16 samples, cached in OUT_DIR) or ``float`` (not with a=ort);
  ``a``     activations: ``ort`` (default: ONNX Runtime's QDQ build, as `vacc-deploy build`),
            ``fq`` (uint8 fake-quantization of the int8 Convs' inputs; with ``w=float`` the
            activation error alone) or ``float`` (with ``w=nearest|gptq`` the weight error alone);
  ``only``  regex: only matching Convs int8 (others float); ``float``: regex of Convs kept float.
  ``damp``  GPTQ damping (fraction of the mean of H's diagonal; default
            vacc_deploy.backends.ort.weight_rounding.DAMP);
  ``bits``  activation bits of the ``a=ort`` build: 8 (default) or 16 (uint16 QDQ activations).
The first and last Convs stay float (the default build's float edges).
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
from onnx import helper, numpy_helper

from vacc_deploy.backends.ort.conv_stats import channel_ranges, conv_second_moments
from vacc_deploy.backends.ort.equalize import apply_scales, channel_spaces, median_scales
from vacc_deploy.backends.ort.layers import float_activations
from vacc_deploy.backends.ort.qdq import quantize_int8, untie_initializers
from vacc_deploy.backends.ort.session import session_options
from vacc_deploy.backends.ort.weight_rounding import grid_scale, round_conv_weights
from vacc_deploy.calibration import INT8_OP_SETS, ArraySource, calibrate


def _crops(src: Path, size: int) -> np.ndarray:
    if src.suffix == ".npy":
        return np.load(src).astype(np.float32)
    files = sorted(p for p in src.rglob("*_LR.png") if "SRF_4" in str(p)) or sorted(src.rglob("*.png"))
    out = []
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.float32) / 255.0
        h, w = img.shape[:2]
        img = cv2.copyMakeBorder(img, 0, max(0, size - h), 0, max(0, size - w), cv2.BORDER_REFLECT_101)
        y, x = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
        out.append(img[y:y + size, x:x + size].transpose(2, 0, 1))
    return np.stack(out)


def _run(model: Path | onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    sess = ort.InferenceSession(data, session_options(1, accurate_int8=True), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.clip(a, 0, 1).astype(np.float64) - np.clip(b, 0, 1)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def _fake_quant(model: onnx.ModelProto, convs: set[str], ranges: dict) -> None:
    """Insert uint8 Q/DQ (ORT's asymmetric rule: range widened to 0) on the inputs of ``convs``."""
    done: dict[str, str] = {}
    nodes = []
    for n in model.graph.node:
        if n.op_type == "Conv" and n.name in convs:
            t = n.input[0]
            if t not in done:
                lo, hi = min(ranges[t][0], 0.0), max(ranges[t][1], 0.0)
                scale = (hi - lo) / 255.0
                k = f"probe_fq{len(done)}"
                model.graph.initializer.extend([numpy_helper.from_array(np.array(scale, np.float32), k + "_s"),
                                                numpy_helper.from_array(np.array(round(-lo / scale), np.uint8), k + "_z")])
                nodes += [helper.make_node("QuantizeLinear", [t, k + "_s", k + "_z"], [k + "_q"]),
                          helper.make_node("DequantizeLinear", [k + "_q", k + "_s", k + "_z"], [k + "_d"])]
                done[t] = k + "_d"
            n.input[0] = done[t]
        nodes.append(n)
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def _nearest(model: onnx.ModelProto, convs: set[str]) -> None:
    """Round the weights of ``convs`` to the nearest level of ORT's per-channel grid (what ORT's
    quantizer does), keeping them fp32."""
    inits = {t.name: t for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Conv" and n.name in convs:
            t = inits[n.input[1]]
            w = numpy_helper.to_array(t).astype(np.float64)
            s = grid_scale(w.reshape(len(w), -1), 127, True)[:, None, None, None]
            t.CopyFrom(numpy_helper.from_array((np.clip(np.rint(w / s), -127, 127) * s).astype(np.float32), t.name))


class Probe:
    def __init__(self, model: Path, calib: Path, ranges: Path, out: Path) -> None:
        self.path, self.out, self.ranges_dir = model, out, ranges
        self.samples = [cv2.imread(str(f))[:, :, ::-1].astype(np.float32).transpose(2, 0, 1)[None].copy() / 255.0
                        for f in sorted(calib.glob("*.png"))]
        self.model = onnx.load(str(model))
        untie_initializers(self.model)
        self.convs = [n.name for n in self.model.graph.node if n.op_type == "Conv"]
        out.mkdir(parents=True, exist_ok=True)

    def ranges(self, method: str, model: onnx.ModelProto, tag: str) -> dict:
        if tag == "plain":
            data = json.loads(next(self.ranges_dir.glob(f"{method}-*.json")).read_text())["result"]["ranges"]
        else:
            cache = self.out / f"ranges-{method}-{tag}.json"
            if not cache.is_file():
                path = self.out / f"model-{tag}.onnx"
                onnx.save(model, str(path))
                res = calibrate(path, ArraySource(self.samples), method, progress=False)
                cache.write_text(json.dumps({k: list(v) for k, v in res.ranges.items()}))
            data = json.loads(cache.read_text())
        return {k: tuple(v) for k, v in data.items()}

    def equalized(self) -> onnx.ModelProto:
        m = onnx.ModelProto()
        m.CopyFrom(self.model)
        spaces = channel_spaces(m)
        tensors = [t for s in spaces.values() for t, _ in s.tensors]
        apply_scales(m, spaces, median_scales(spaces, channel_ranges(m, ArraySource(self.samples), tensors)))
        return m

    def rounded(self, m: onnx.ModelProto, int8: list[str], tag: str) -> None:
        cache = self.out / f"moments-{tag}.npz"
        if cache.is_file():
            z = np.load(cache)
            h = {str(name): z[f"h{i}"] for i, name in enumerate(z["names"])}
        else:
            h = conv_second_moments(m, ArraySource(self.samples), self.convs[1:-1])  # every Conv but the edges
            np.savez(cache, names=np.array(list(h)), **{f"h{i}": v for i, v in enumerate(h.values())})
        round_conv_weights(m, h, int8)

    @staticmethod
    def damped(damp: float | None):
        """Context: GPTQ's damping (fraction of the mean of H's diagonal) set to ``damp``."""
        import contextlib

        from vacc_deploy.backends.ort import weight_rounding

        @contextlib.contextmanager
        def ctx():
            old = weight_rounding.DAMP
            weight_rounding.DAMP = old if damp is None else damp
            try:
                yield
            finally:
                weight_rounding.DAMP = old
        return ctx()

    def variant(self, spec: str, x: np.ndarray, ref: np.ndarray) -> str:
        name, _, kv = spec.partition(":")
        o = dict(p.split("=", 1) for p in kv.split(",") if p)
        tag = "eq" if o.get("eq") == "1" else "plain"
        m = self.equalized() if tag == "eq" else onnx.load(str(self.path))
        untie_initializers(m)
        ranges = self.ranges(o.get("rng", "percentile"), m, tag)
        floats = {self.convs[0], self.convs[-1]}
        floats |= {c for c in self.convs if "only" in o and not re.search(o["only"], c)}
        floats |= {c for c in self.convs if "float" in o and re.search(o["float"], c)}
        int8 = [c for c in self.convs if c not in floats]
        if o.get("w", "nearest") == "gptq":
            with self.damped(float(o["damp"]) if "damp" in o else None):
                self.rounded(m, int8, tag)
        if o.get("a", "ort") == "ort":
            src, dst = self.out / "source.onnx", self.out / "q.onnx"
            onnx.save(m, str(src))
            names = [c for c in self.convs if c in floats]
            quantize_int8(src, dst, ranges, nodes_to_exclude=names + float_activations(m, names),
                          op_types=INT8_OP_SETS["compute"], activation_bits=int(o.get("bits", 8)))
            y = _run(dst, x)
        else:
            if o.get("w", "nearest") == "nearest":
                _nearest(m, set(int8))
            if o.get("a") == "fq":
                _fake_quant(m, set(int8), ranges)
            y = _run(m, x)
        return f"{name:28s} float_convs={len(floats):3d}/{len(self.convs)} fidelity={_psnr(y, ref):6.2f} dB"


def main(argv: list[str]) -> None:
    model, calib, ranges, crops, out = map(Path, argv[:5])
    probe = Probe(model, calib, ranges, out)
    size = probe.model.graph.input[0].type.tensor_type.shape.dim[2].dim_value
    x = _crops(crops, size)
    ref = _run(model, x)
    for spec in argv[5:]:
        t0 = time.perf_counter()
        print(probe.variant(spec, x, ref) + f"  ({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
