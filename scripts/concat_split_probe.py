"""Probe: how much of an RRDBNet's uint8 activation error comes from one range per Concat?

Every dense-block conv2-conv5 reads ``Concat(x, x1, ...)``: the block input and the growth
features, whose ranges differ (up to 6x at the maximum). One uint8 scale for the concatenation
gives the block input a coarse step. This probe measures the activation error alone (all weights
float; the first and last Convs float, as the default build) in four ways, as fidelity PSNR (RGB,
outputs clipped to [0, 1]) of the fake-quantized model to fp32 on model-sized crops:

* ``inputs``: uint8 Q/DQ (ORT's asymmetric rule) on each int8 Conv's input, one range per tensor,
  against one range per Concat input ("branch": each part of the concatenation its own scale),
  with the ranges of a cached ``ranges`` JSON (its percentile ranges and its observed min/max);
* ``in+out``: also every Conv output rounded, as an ONNX Runtime QDQ build rounds it, against the
  graph with every Concat-reading Conv split into one Conv per Concat input (weights split along
  Cin, summed by float Adds, each partial Conv's input and output rounded at its own range); the
  ranges of this pair are the min/max over the first 8 calibration samples.

Usage (the cached export, its calibration folder and percentile ranges of a realesrgan_x4plus
build; CROPS: a folder of images, 128x128 centre crops of each after a 2x area downscale):

    PYTHONPATH=. python scripts/concat_split_probe.py WORK/realesrgan_x4plus/export/*/model.onnx \
        WORK/realesrgan_x4plus/calib/*/ WORK/realesrgan_x4plus/ranges/percentile-*.json \
        ../shared/data/images/train/Urban100 [--skip-inputs]

``--skip-inputs`` runs only the ``in+out`` pair.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from int8_fidelity_probe import _psnr as psnr  # scripts/ (on sys.path when run): PSNR of [0, 1] outputs, clipped

Ranges = dict[str, tuple[float, float]]


def crops(folder: Path, size: int, n: int = 6) -> np.ndarray:
    """``n`` (3, size, size) centre crops in [0, 1] of every 7th image large enough after a 2x downscale."""
    out = []
    for f in sorted(folder.glob("*.png"))[::7]:
        img = cv2.imread(str(f))[:, :, ::-1].astype(np.float32) / 255
        lr = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
        if min(lr.shape[:2]) >= size:
            y, x = (lr.shape[0] - size) // 2, (lr.shape[1] - size) // 2
            out.append(np.clip(lr[y:y + size, x:x + size], 0, 1).transpose(2, 0, 1))
        if len(out) == n:
            break
    return np.stack(out).astype(np.float32)


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """The model's first output for each image of ``x`` (N, 3, H, W), stacked."""
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])


class _FQ:
    """Inserts uint8 Q/DQ pairs (range widened to contain 0, ORT's rule)."""

    def __init__(self, model: onnx.ModelProto, ranges: Ranges) -> None:
        self.model, self.ranges, self.n = model, ranges, 0

    def __call__(self, t: str, out: str | None = None) -> tuple[list[onnx.NodeProto], str]:
        lo, hi = min(self.ranges[t][0], 0.0), max(self.ranges[t][1], 0.0)
        s, k = (hi - lo) / 255.0, f"fq{self.n}"
        self.n += 1
        self.model.graph.initializer.extend([numpy_helper.from_array(np.array(s, np.float32), k + "_s"),
                                             numpy_helper.from_array(np.array(round(-lo / s), np.uint8), k + "_z")])
        dst = out or k + "_d"
        return [helper.make_node("QuantizeLinear", [t, k + "_s", k + "_z"], [k + "_q"]),
                helper.make_node("DequantizeLinear", [k + "_q", k + "_s", k + "_z"], [dst])], dst


def fake_quant(model: onnx.ModelProto, ranges: Ranges, *, branch: bool = False, outputs: bool = False) -> None:
    """Round the inputs (each Concat input on its own with ``branch``) and, with ``outputs``, the
    outputs of every Conv but the first and last."""
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
    skip, fq = {convs[0], convs[-1]}, _FQ(model, ranges)
    prod = {o: n for n in model.graph.node for o in n.output}
    done: dict[str, str] = {}
    nodes: list[onnx.NodeProto] = []
    for n in model.graph.node:
        if n.op_type != "Conv" or n.name in skip:
            nodes.append(n)
            continue
        t, p = n.input[0], prod.get(n.input[0])
        if t not in done and branch and p is not None and p.op_type == "Concat":
            for b in p.input:
                if b not in done:
                    new, done[b] = fq(b)
                    nodes += new
            nodes.append(helper.make_node("Concat", [done[b] for b in p.input], [t + "_bq"], axis=1))
            done[t] = t + "_bq"
        elif t not in done:
            new, done[t] = fq(t)
            nodes += new
        n.input[0] = done[t]
        if outputs:
            o = n.output[0]
            n.output[0] = o + "_raw"
            fq.ranges[o + "_raw"] = ranges[o]
            nodes.append(n)
            nodes += fq(o + "_raw", o)[0]
        else:
            nodes.append(n)
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def split_concat_convs(model: onnx.ModelProto) -> None:
    """Every Conv reading a Concat becomes one Conv per Concat input (weights split along Cin, bias
    on the first), summed by Adds into the original output tensor. Exact up to float summation order."""
    prod = {o: n for n in model.graph.node for o in n.output}
    inits = {t.name: t for t in model.graph.initializer}
    inferred = onnx.shape_inference.infer_shapes(model).graph.value_info
    chans = {vi.name: vi.type.tensor_type.shape.dim[1].dim_value for vi in inferred}
    nodes: list[onnx.NodeProto] = []
    for n in model.graph.node:
        p = prod.get(n.input[0]) if n.op_type == "Conv" else None
        if p is None or p.op_type != "Concat":
            nodes.append(n)
            continue
        w, c0, parts = numpy_helper.to_array(inits[n.input[1]]), 0, []
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        for j, b in enumerate(p.input):
            c, wn = chans[b], f"{n.name}_w{j}"
            model.graph.initializer.append(numpy_helper.from_array(w[:, c0:c0 + c].copy(), wn))
            c0 += c
            ins = [b, wn] + ([n.input[2]] if j == 0 and len(n.input) > 2 else [])
            parts.append(f"{n.output[0]}_part{j}")
            nodes.append(helper.make_node("Conv", ins, [parts[-1]], name=f"{n.name}_part{j}", **attrs))
        acc = parts[0]
        for j, o in enumerate(parts[1:]):
            dst = n.output[0] if j == len(parts) - 2 else f"{n.output[0]}_sum{j}"
            nodes.append(helper.make_node("Add", [acc, o], [dst], name=f"{n.name}_add{j}"))
            acc = dst
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def conv_minmax(model: onnx.ModelProto, samples: np.ndarray) -> Ranges:
    """(min, max) over ``samples`` (one at a time) of every Conv's input and output, 0 included."""
    names = sorted({t for n in model.graph.node if n.op_type == "Conv" for t in (n.input[0], n.output[0])})
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    m.graph.output.extend(helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None) for t in names if t not in have)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    outs, lo, hi = [o.name for o in sess.get_outputs()], dict.fromkeys(names, 0.0), dict.fromkeys(names, 0.0)
    for x in samples:
        for k, v in zip(outs, sess.run(None, {sess.get_inputs()[0].name: x[None]})):
            if k in lo:
                lo[k], hi[k] = min(lo[k], float(v.min())), max(hi[k], float(v.max()))
    return {t: (lo[t], hi[t]) for t in names}


def main(argv: list[str]) -> None:
    model_path, calib, ranges_json, crop_dir = map(Path, argv[:4])
    base = onnx.load(str(model_path))
    size = base.graph.input[0].type.tensor_type.shape.dim[2].dim_value
    x = crops(crop_dir, size)
    ref = run(base, x)
    res = json.loads(ranges_json.read_text())["result"]
    for label, rng in ([] if "--skip-inputs" in argv else [("percentile", {k: tuple(v) for k, v in res["ranges"].items()}),
                       ("max", {k: (v["min"], v["max"]) for k, v in res["stats"].items()})]):
        for branch in (False, True):
            m = onnx.load(str(model_path))
            fake_quant(m, rng, branch=branch)
            print(f"inputs  {label:10s} {'branch' if branch else 'tensor'}  fidelity {psnr(run(m, x), ref):6.2f} dB",
                  flush=True)
    samples = np.stack([cv2.imread(str(f))[:, :, ::-1].astype(np.float32).transpose(2, 0, 1) / 255
                        for f in sorted(calib.glob("*.png"))[:8]])
    for split in (False, True):
        m = onnx.load(str(model_path))
        if split:
            split_concat_convs(m)
        fake_quant(m, conv_minmax(m, samples), outputs=True)
        print(f"in+out  max(8)     {'split ' if split else 'tensor'}  fidelity {psnr(run(m, x), ref):6.2f} dB",
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
