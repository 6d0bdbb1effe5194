"""The ``vacc`` int8 numerics profile: an ONNX Runtime QDQ model that computes what the VACC card's
quantizer computes, as far as the public code it forks (Apache TVM's ``relay.quantize``, read at
release v0.13.0) defines it. Torch-free. Every rule below names its TVM source file; docs/vacc.md
lists the assumptions and the vendor extensions we cannot see.

Arithmetic (``python/tvm/relay/quantize/_calibrate.py`` ``_set_params``; ``realize.cc``):

* int8 activations are symmetric, zero point 0, scale ``threshold / 128`` (``2 ** (nbit - sign)``
  with ``nbit_input=8``), clipped to ``[-127, 127]``: the threshold itself rounds to 128 and is
  clipped to 127. Emulated as ``Clip(-127 s, 127 s) -> QuantizeLinear(int8) -> DequantizeLinear``.
* weights (WEIGHT kind) the same with ``threshold = max|w|`` (``weight_scale="max"``) or
  ``2 ** ceil(log2 max|w|)`` (``"power2"``); per output channel when ``per_channel`` (a vendor
  extension: upstream TVM is per-tensor; we apply the same rule per channel). A Conv bias is an
  ``add`` of a constant to the conv output after ``CanonicalizeOps``, so upstream quantizes it as a
  WEIGHT too: int8, per tensor. Stored as int8 initializers read through ``DequantizeLinear``.
* accumulation is int32 (``nbit_activation=32``): a conv output stays exact until something asks for
  8 bits; the emulation computes it in float32 from the int8 operands.

Where 8-bit rounding happens (``_annotate.py``; an ``INPUT`` quantize = 8 bits, ``ACTIVATION`` =
32 bits): a quantized conv's data input (unless already int8); the *second* input of an ``add`` of two
conv results (the first stays int32), or the non-quantized side of an ``add``/``multiply`` with one
quantized input (a constant as a WEIGHT); the input of a max pool. ``relu``/``clip``/``reshape``/
``transpose``/``strided_slice``/``avg_pool`` pass the kind through; a ``concatenate`` rescales its
inputs to a common scale in int32 (no 8-bit rounding; a float input is only clipped to its
threshold). Every other op (DepthToSpace, LeakyRelu, Resize, Sub, ...) is not annotated by TVM: it
runs in float on the dequantized value, and its output is float until the next quantized op.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from onnx import helper, numpy_helper

from vacc_deploy.backends.ort.layers import tvm_conv_order
from vacc_deploy.types import DEFAULT_WEIGHT_SCALE, WEIGHT_SCALES, WeightScale  # noqa: F401  (re-exported)
from vacc_deploy.errors import BuildError, UsageError

# WeightScale, WEIGHT_SCALES, DEFAULT_WEIGHT_SCALE (TVM's ``qconfig`` default, ``quantize.py``
# ``_node_defaults``): vacc_deploy.types, the package's one vocabulary.
#: ``valid_range = 2 ** (nbit - sign)`` for 8-bit signed values (``_calibrate.py`` ``_set_params``).
VALID_RANGE = 128.0
#: Quantized values are clipped to ``[-(VALID_RANGE - 1), VALID_RANGE - 1]``.
QMAX = 127.0

Kind = Literal["input", "activation"]  # TVM's QAnnotateKind.INPUT (int8) / ACTIVATION (int32)
_PASS_THROUGH = {"Relu", "Clip", "Reshape", "Transpose", "Slice", "Flatten", "Identity", "AveragePool"}


def round_half_away(x: np.ndarray) -> np.ndarray:
    """TVM's ``round`` (``std::round``): halves away from zero."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def weight_threshold(w: np.ndarray, mode: str, per_channel: bool) -> np.ndarray:
    """The threshold of weight tensor ``w`` (``_calibrate.py`` ``_max_scale`` / ``_power2_scale``):
    ``max|w|`` or that rounded up to a power of two (1.0 for an all-zero tensor). Shape ``(C,)``
    over axis 0 when ``per_channel``, else a 0-d array."""
    if mode not in WEIGHT_SCALES:
        raise UsageError(f"weight_scale {mode!r}: expected one of {', '.join(WEIGHT_SCALES)}")
    a = np.abs(w.astype(np.float64))
    m = a.reshape(a.shape[0], -1).max(axis=1) if per_channel and w.ndim > 1 else np.asarray(a.max())
    if mode == "power2":
        safe = np.where(m > 0, m, 1.0)
        return np.where(m > 0, 2.0 ** np.ceil(np.log2(safe)), 1.0)
    return np.where(m > 0, m, 1.0)


def quantize_values(x: np.ndarray, scale: np.ndarray | float) -> np.ndarray:
    """int8 codes of ``x`` at ``scale`` (broadcast): ``clip(round(x * (1/scale)), -127, 127)``, the
    ``realize.cc`` "quantize from real" arithmetic in float32."""
    inv = (np.float32(1.0) / np.asarray(scale, np.float32)).astype(np.float32)
    return np.clip(round_half_away(x.astype(np.float32) * inv), -QMAX, QMAX).astype(np.int8)


def quantize_weight(w: np.ndarray, mode: str, per_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """(int8 codes, float32 scale) of a weight tensor; scale ``(C,)`` per channel (axis 0) or 0-d."""
    scale = (weight_threshold(w, mode, per_channel) / VALID_RANGE).astype(np.float32)
    shape = (-1,) + (1,) * (w.ndim - 1) if scale.ndim else ()
    return quantize_values(w, scale.reshape(shape)), scale


@dataclass
class _Emitter:
    """Builds the emulated graph: new nodes and initializers, the kind of each tensor, memoized
    quantize points (TVM's ``qnode_map``: one per tensor and kind)."""

    thresholds: Mapping[str, float]
    weight_scale: str
    per_channel: bool
    inits: dict[str, np.ndarray]
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    new_inits: list[onnx.TensorProto] = field(default_factory=list)
    kind: dict[str, Kind] = field(default_factory=dict)
    memo: dict[tuple[str, str], str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: {"int8_activations": 0, "int8_weights": 0})

    def _const(self, name: str, value: np.ndarray) -> str:
        self.new_inits.append(numpy_helper.from_array(value, name))
        return name

    def _threshold(self, name: str) -> float:
        if name in self.inits:
            return float(np.abs(self.inits[name]).max())
        if name not in self.thresholds:
            raise BuildError(f"no calibration range for tensor {name!r} (the vacc profile quantizes it)")
        return float(self.thresholds[name])

    def int8(self, name: str) -> str:
        """An INPUT quantize of tensor ``name``: 8 bits at ``threshold / 128``, clipped to +-127."""
        key = (name, "input")
        if key not in self.memo:
            t = self._threshold(name)
            s = np.float32(t / VALID_RANGE if t > 0 else 1.0 / VALID_RANGE)
            base = f"{name}__vacc"
            lo, hi = self._const(base + "_lo", np.float32(-QMAX * s)), self._const(base + "_hi", np.float32(QMAX * s))
            sc, zp = self._const(base + "_scale", s), self._const(base + "_zp", np.int8(0))
            self.nodes += [helper.make_node("Clip", [name, lo, hi], [base + "_c"], name=base + "_clip"),
                           helper.make_node("QuantizeLinear", [base + "_c", sc, zp], [base + "_q"], name=base + "_q"),
                           helper.make_node("DequantizeLinear", [base + "_q", sc, zp], [base], name=base + "_dq")]
            self.memo[key] = base
            self.counts["int8_activations"] += 1
        return self.memo[key]

    def clip32(self, name: str) -> str:
        """An ACTIVATION quantize (32 bits at ``threshold / 2**31``): only the clip to +-threshold."""
        key = (name, "activation")
        if key not in self.memo:
            t = np.float32(self._threshold(name))
            base = f"{name}__vacc32"
            lo, hi = self._const(base + "_lo", -t), self._const(base + "_hi", t)
            self.nodes.append(helper.make_node("Clip", [name, lo, hi], [base], name=base + "_clip"))
            self.memo[key] = base
        return self.memo[key]

    def weight(self, name: str, per_channel: bool) -> str:
        """A WEIGHT quantize of initializer ``name``: int8 codes read through DequantizeLinear."""
        key = (name, f"weight{int(per_channel)}")
        if key not in self.memo:
            codes, scale = quantize_weight(self.inits[name], self.weight_scale, per_channel)
            base = f"{name}__vaccw{int(per_channel)}"
            q, sc = self._const(base + "_q", codes), self._const(base + "_scale", scale)
            zp = self._const(base + "_zp", np.zeros(scale.shape, np.int8))
            attrs = {"axis": 0} if scale.ndim else {}
            self.nodes.append(helper.make_node("DequantizeLinear", [q, sc, zp], [base], name=base + "_dq", **attrs))
            self.memo[key] = base
            self.counts["int8_weights"] += 1
        return self.memo[key]


def _binary(e: _Emitter, node: onnx.NodeProto) -> tuple[list[str], Kind | None]:
    """``add`` / ``multiply`` (``_annotate.py`` ``add_rewrite`` / ``multiply_rewrite``): new inputs
    and the output kind. A float side next to a quantized one is quantized (a constant as WEIGHT)."""
    a, b = node.input[0], node.input[1]
    ka, kb = e.kind.get(a), e.kind.get(b)
    if ka is None and kb is None:
        return [a, b], None

    def side(name: str) -> str:
        return e.weight(name, False) if name in e.inits else e.int8(name)

    if node.op_type == "Mul":
        if ka is not None and kb is not None:
            return [a, b], None  # TVM raises ValueError here; we leave the product in float (docs/vacc.md)
        a2 = e.int8(a) if ka == "activation" else (a if ka else side(a))
        b2 = e.int8(b) if kb == "activation" else (b if kb else side(b))
        return [a2, b2], "activation"
    if ka is None:
        return [e.int8(a), b], "input"
    if kb is None:
        return [a, side(b)], "activation"
    if ka == kb == "input":
        return [a, b], "input"
    if ka == kb == "activation":
        return [a, e.int8(b)], "activation"
    return [a, b], "activation"


def _rewrite(e: _Emitter, node: onnx.NodeProto, skipped: bool) -> tuple[list[str], Kind | None]:
    """New inputs of ``node`` and the kind of its outputs (None: float)."""
    ins = list(node.input)
    kinds = [e.kind.get(i) for i in ins]
    if node.op_type == "Conv" and not skipped and len(ins) >= 2 and ins[1] in e.inits:
        x = ins[0] if kinds[0] == "input" else e.int8(ins[0])
        new = [x, e.weight(ins[1], e.per_channel)]
        if len(ins) > 2 and ins[2]:
            new.append(e.weight(ins[2], False))  # bias: add(conv, const) -> WEIGHT, per tensor
        return new, "activation"
    if node.op_type in ("Add", "Mul") and len(ins) == 2:
        return _binary(e, node)
    if node.op_type == "Concat":
        if all(k is None for k in kinds):
            return ins, None
        return [e.clip32(i) if k is None else i for i, k in zip(ins, kinds)], "activation"
    if node.op_type == "MaxPool":
        if kinds[0] is None:
            return ins, None
        return [e.int8(ins[0]) if kinds[0] == "activation" else ins[0]], "input"
    if node.op_type in _PASS_THROUGH and kinds and kinds[0] is not None:
        return ins, kinds[0]
    return ins, None


def emulate(model: onnx.ModelProto, thresholds: Mapping[str, float], *, weight_scale: str,
            per_channel: bool, float_convs: Collection[str]) -> tuple[onnx.ModelProto, dict]:
    """The emulated model of fp32 ``model`` and a summary (counts, float convs, ops left float).

    ``thresholds`` maps every tensor the profile quantizes to its symmetric threshold (> 0);
    ``float_convs`` are Conv node names kept in float (``skip_conv_layers``). Raises UsageError
    (unknown node name, weight scale) or BuildError (missing threshold)."""
    convs = {n.name for n in model.graph.node if n.op_type == "Conv"}
    unknown = sorted(set(float_convs) - convs)
    if unknown:
        raise UsageError(f"convs to keep in float not found in the model: {', '.join(unknown)}")
    if weight_scale not in WEIGHT_SCALES:
        raise UsageError(f"weight_scale {weight_scale!r}: expected one of {', '.join(WEIGHT_SCALES)}")
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    e = _Emitter(thresholds, weight_scale, per_channel, inits)
    float_ops: set[str] = set()
    for node in model.graph.node:
        ins, kind = _rewrite(e, node, node.name in float_convs)
        new = onnx.NodeProto()
        new.CopyFrom(node)
        del new.input[:]
        new.input.extend(ins)
        e.nodes.append(new)
        for o in node.output:
            if kind is not None:
                e.kind[o] = kind
        if kind is None and node.op_type != "Conv":
            float_ops.add(node.op_type)
    summary = {**e.counts, "float_convs": [n for n in tvm_conv_order(model) if n in float_convs],
               "float_op_types": sorted(float_ops)}
    return _assemble(model, e), summary


def _assemble(model: onnx.ModelProto, e: _Emitter) -> onnx.ModelProto:
    """``model`` with the emitter's nodes, its new initializers and the old ones still read."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(e.nodes)
    read = {i for n in e.nodes for i in n.input}
    kept = [t for t in model.graph.initializer if t.name in read] + e.new_inits
    del out.graph.initializer[:]
    out.graph.initializer.extend(kept)
    out.metadata_props.add(key="vacc_deploy.numerics", value="vacc")
    return out


def symmetric_thresholds(ranges: Mapping[str, tuple[float, float]]) -> dict[str, float]:
    """TVM's symmetric threshold of each calibrated range: ``max(|min|, |max|)``."""
    return {k: max(abs(float(lo)), abs(float(hi))) for k, (lo, hi) in ranges.items()}


def quantize_vacc(fp32_model_path: str | Path, out_path: str | Path, ranges: Mapping[str, tuple[float, float]],
                  *, weight_scale: str, per_channel: bool, float_convs: Collection[str]) -> dict:
    """Write the ``vacc``-profile QDQ model of ``fp32_model_path`` to ``out_path`` (atomically) from
    calibrated ``ranges`` (tensor -> (min, max); the threshold is the larger magnitude). Returns the
    :func:`emulate` summary. Raises UsageError / BuildError; never leaves a partial file."""
    from vacc_deploy.backends.ort.qdq import load_model, save_checked

    model, summary = emulate(load_model(fp32_model_path), symmetric_thresholds(ranges), weight_scale=weight_scale,
                             per_channel=per_channel, float_convs=float_convs)
    save_checked(model, out_path, "vacc numerics")
    return summary
