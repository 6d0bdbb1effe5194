"""The ``vacc`` int8 numerics profile: an ONNX Runtime QDQ model that computes what the VACC card's
quantizer computes, as far as the public code it forks (Apache TVM's ``relay.quantize``, read at
release v0.13.0) defines it. Torch-free. Every rule below names its TVM source file; docs/vacc.md
lists the assumptions and the vendor extensions we cannot see.

Arithmetic (``python/tvm/relay/quantize/_calibrate.py`` ``_set_params``; ``realize.cc``):

* int8 activations are symmetric, zero point 0, scale ``threshold / 128`` (``2 ** (nbit - sign)``
  with ``nbit_input=8``), clipped to ``[-127, 127]``: the threshold itself rounds to 128 and is
  clipped to 127. Emulated in float ops: ``Clip(Round(x * (1/s)), -127, 127) * s``.
* weights (WEIGHT kind) the same with ``threshold = max|w|`` (``weight_scale="max"``) or
  ``2 ** ceil(log2 max|w|)`` (``"power2"``); per output channel when ``per_channel`` (a vendor
  extension: upstream TVM is per-tensor; we apply the same rule per channel). A Conv bias is an
  ``add`` of a constant to the conv output after ``CanonicalizeOps``, so upstream quantizes it as a
  WEIGHT too: int8, per tensor. Stored as float32 initializers holding exactly ``code * scale``.
* accumulation is int32 (``nbit_activation=32``): a conv output stays exact until something asks for
  8 bits; the emulation computes it in float32 from the int8 operands. Two int8-domain values added
  (or concatenated) meet at the smaller of their scales (``UnifyDTypeScale``): the coarser one is
  rounded onto the finer grid unless the ratio is an integer (``MulAndDiv``).

Where 8-bit rounding happens: the annotate rules per op (:mod:`vacc_deploy.backends.ort.tvm_rules`,
``_annotate.py``) plus two graph-level rules (:mod:`vacc_deploy.backends.ort.tvm_passes`): a 32-bit value
is rounded to int8 wherever TVM's partition pass puts a ``cast_hint`` (before a conv, before both
sides of an ``add`` of two conv results, before every op without a quantize rule such as
DepthToSpace, and on the function's result), and an annotated value read by more than one
consumer is rounded to int8 once for all of them. Ops without a rule run in float on the
dequantized value.
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
    """Builds the emulated graph: new nodes and initializers, the annotate kind of each tensor, the
    int8-domain scale of each realized value that has one (``coarse``: an int8 tensor, or an int32
    sum of int8 tensors at the smaller scale), memoized quantize points (TVM's ``qnode_map``: one per
    tensor and kind)."""

    thresholds: Mapping[str, float]
    weight_scale: str
    per_channel: bool
    inits: dict[str, np.ndarray]
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    new_inits: list[onnx.TensorProto] = field(default_factory=list)
    kind: dict[str, Kind] = field(default_factory=dict)
    coarse: dict[str, float] = field(default_factory=dict)
    memo: dict[tuple[str, str], str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: {"int8_activations": 0, "int8_weights": 0})

    def _const(self, name: str, value: np.ndarray) -> str:
        self.new_inits.append(numpy_helper.from_array(value, name))
        return name

    def _threshold(self, name: str) -> float:
        if name in self.inits:
            return float(np.abs(self.inits[name]).max())
        if name not in self.thresholds:
            tensor = name.removesuffix("__vacc_fp")
            raise BuildError(f"no calibration range for tensor {tensor!r} (the vacc profile quantizes it)")
        return float(self.thresholds[name])

    def int8(self, name: str) -> str:
        """An INPUT quantize of tensor ``name``: 8 bits at ``threshold / 128``, clipped to +-127,
        in float ops (``QuantizeRealize``'s "quantize from real": ``Clip(Round(x * (1/s)))``, then
        times ``s``). Not QuantizeLinear/DequantizeLinear: ONNX Runtime's QDQ transformers would
        re-quantize the float weights of a Conv between such a pair (per tensor)."""
        key = (name, "input")
        if key not in self.memo:
            t = self._threshold(name)
            s = np.float32(t / VALID_RANGE if t > 0 else 1.0 / VALID_RANGE)
            base = f"{name}__vacc"
            inv, sc = self._const(base + "_inv", np.float32(1.0) / s), self._const(base + "_scale", s)
            lo, hi = self._const(base + "_lo", np.float32(-QMAX)), self._const(base + "_hi", np.float32(QMAX))
            self.nodes += [helper.make_node("Mul", [name, inv], [base + "_m"], name=base + "_mul"),
                           helper.make_node("Round", [base + "_m"], [base + "_r"], name=base + "_round"),
                           helper.make_node("Clip", [base + "_r", lo, hi], [base + "_q"], name=base + "_clip"),
                           helper.make_node("Mul", [base + "_q", sc], [base], name=base + "_back")]
            self.memo[key] = base
            self.coarse[base] = float(s)
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
        """A WEIGHT quantize of initializer ``name``: its int8 codes times their scale, stored as a
        float32 initializer (what ``DequantizeLinear`` of the int8 codes computes, bit for bit)."""
        key = (name, f"weight{int(per_channel)}")
        if key not in self.memo:
            codes, scale = quantize_weight(self.inits[name], self.weight_scale, per_channel)
            shape = (-1,) + (1,) * (codes.ndim - 1) if scale.ndim else ()
            self.memo[key] = self._const(f"{name}__vaccw{int(per_channel)}",
                                         (codes.astype(np.float32) * scale.reshape(shape)).astype(np.float32))
            self.counts["int8_weights"] += 1
        return self.memo[key]

    def rescale(self, name: str, s_to: float) -> str:
        """``MulAndDiv`` (``realize.cc``) of the int8-domain value ``name`` (scale ``coarse[name]``)
        to the smaller scale ``s_to``: exact for an integer factor (shift or multiply), else a
        fixed-point multiply that rounds to the nearest multiple of ``s_to``."""
        factor = self.coarse[name] / s_to
        if abs(factor - round(factor)) < 1e-6:
            return name
        key = (name, f"rescale{s_to!r}")
        if key not in self.memo:
            base = f"{name}__vaccr{len(self.memo)}"
            inv, sc = self._const(base + "_inv", np.float32(1.0 / s_to)), self._const(base + "_s", np.float32(s_to))
            self.nodes += [helper.make_node("Mul", [name, inv], [base + "_m"], name=base + "_mul"),
                           helper.make_node("Round", [base + "_m"], [base + "_r"], name=base + "_round"),
                           helper.make_node("Mul", [base + "_r", sc], [base], name=base + "_back")]
            self.memo[key] = base
        return self.memo[key]

    def unify(self, names: list[str]) -> tuple[list[str], float | None]:
        """``UnifyDTypeScale`` of two int8-domain values: both at the smaller of their scales (the
        other one rescaled). Values without an int8-domain scale (32-bit conv results, at scales
        ~1e-5) are left as they are: rescaling onto such a scale is exact to float32 precision."""
        if len(names) != 2 or not all(n in self.coarse for n in names):
            return names, None
        s = min(self.coarse[n] for n in names)
        return [self.rescale(n, s) if self.coarse[n] > s else n for n in names], s


def emulate(model: onnx.ModelProto, thresholds: Mapping[str, float], *, weight_scale: str,
            per_channel: bool, float_convs: Collection[str]) -> tuple[onnx.ModelProto, dict]:
    """The emulated model of fp32 ``model`` and a summary (counts, float convs, ops left float,
    whether the output is rounded to int8).

    ``thresholds`` maps every tensor the profile quantizes to its symmetric threshold (> 0);
    ``float_convs`` are Conv node names kept in float (``skip_conv_layers``). Raises UsageError
    (unknown node name, weight scale) or BuildError (missing threshold)."""
    from vacc_deploy.backends.ort.tvm_rules import annotate

    convs = {n.name for n in model.graph.node if n.op_type == "Conv"}
    unknown = sorted(set(float_convs) - convs)
    if unknown:
        raise UsageError(f"convs to keep in float not found in the model: {', '.join(unknown)}")
    if weight_scale not in WEIGHT_SCALES:
        raise UsageError(f"weight_scale {weight_scale!r}: expected one of {', '.join(WEIGHT_SCALES)}")
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    work, aliases = _rename_outputs(model)
    e = _Emitter({**thresholds, **{new: thresholds[old] for new, old in aliases.items() if old in thresholds}},
                 weight_scale, per_channel, inits)
    float_ops, int8_outputs = annotate(e, work, set(float_convs))
    summary = {**e.counts, "float_convs": [n for n in tvm_conv_order(model) if n in float_convs],
               "float_op_types": sorted(float_ops), "int8_outputs": int8_outputs}
    return _assemble(model, e), summary


def _rename_outputs(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, str]]:
    """A copy of ``model`` whose graph outputs are produced under new names (``<name>__vacc_fp``),
    so the emulation can put a quantize between the last node and the output it names."""
    outs = {o.name: f"{o.name}__vacc_fp" for o in model.graph.output}
    work = onnx.ModelProto()
    work.CopyFrom(model)
    for node in work.graph.node:
        for seq in (node.input, node.output):
            for i, name in enumerate(seq):
                if name in outs:
                    seq[i] = outs[name]
    for o in work.graph.output:
        o.name = outs[o.name]
    return work, {new: old for old, new in outs.items()}


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
    import vacc_deploy.calibration  # noqa: F401 (first: it and backends.ort.qdq import each other)
    from vacc_deploy.backends.ort.qdq import load_model, save_checked

    model, summary = emulate(load_model(fp32_model_path), symmetric_thresholds(ranges), weight_scale=weight_scale,
                             per_channel=per_channel, float_convs=float_convs)
    save_checked(model, out_path, "vacc numerics")
    return summary
