"""Per-layer int8 error analysis: how far each quantized layer's output drifts from fp32.

For every Conv that an int8 QDQ build quantizes, two errors of its output (as the int8 model
represents it, i.e. after the layer's own output quantize/dequantize when it has one) against the
fp32 model's same tensor:

- ``accumulated``: in the int8 model, so the error carries everything upstream;
- ``alone``: the layer fed with the fp32 model's own input, with only its input activation, weights
  (and bias) and output quantized as in the int8 model: the error this layer adds by itself.

Both come from ONE ONNX graph (:func:`combined_model`): the fp32 graph, the int8 graph (tensors
prefixed ``q:``) and one isolated copy of each layer's quantized sub-graph (``iso<i>:``), so one ORT
run per image gives all three tensors per layer. Statistics are running sums in float64 (signal and
error energy, dot products), updated one image at a time and dropped: memory does not depend on the
number of images. Layers are grouped so that one run's outputs stay under a byte budget.

SQNR (dB) = 10 log10(sum ref^2 / sum (x - ref)^2), pooled over all images; cosine = <ref, x> / (|ref| |x|).
Torch-free.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper

from vacc_deploy.errors import BuildError
from vacc_deploy.calibration.collect import DEFAULT_MAX_BYTES_PER_RUN, infer_shapes, plan_groups, tensor_nbytes
from vacc_deploy.backends.ort.qdq import QDQ_OPS, producers

OUTPUT_LAYER = "<network output>"


@dataclass
class ErrorStats:
    """Running sums for one (reference, candidate) tensor pair, over any number of images."""

    ref2: float = 0.0
    err2: float = 0.0
    dot: float = 0.0
    cand2: float = 0.0
    n: int = 0

    def update(self, ref: np.ndarray, cand: np.ndarray) -> None:
        """Add one image's tensors (same shape, any float dtype)."""
        r = ref.astype(np.float64).ravel()
        c = cand.astype(np.float64).ravel()
        self.ref2 += float(r @ r)
        self.cand2 += float(c @ c)
        self.dot += float(r @ c)
        d = c - r
        self.err2 += float(d @ d)
        self.n += 1

    @property
    def sqnr_db(self) -> float:
        """Signal-to-quantization-noise ratio in dB (inf when the error is exactly zero)."""
        if self.err2 == 0.0:
            return math.inf
        return 10.0 * math.log10(max(self.ref2, 1e-300) / self.err2)

    @property
    def cosine(self) -> float:
        """Cosine similarity of the pooled tensors (1.0 when both are zero)."""
        den = math.sqrt(self.ref2 * self.cand2)
        return 1.0 if den == 0.0 else self.dot / den


@dataclass
class LayerError:
    """Errors of one quantized layer. ``index`` is its 0-based Conv index in graph order (the vamc
    ``skip_conv_layers`` numbering), None for the network output row."""

    name: str
    index: int | None
    tensor: str
    alone: ErrorStats = field(default_factory=ErrorStats)
    accumulated: ErrorStats = field(default_factory=ErrorStats)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (inf written as the string ``inf``)."""
        def num(v: float) -> float | str:
            return "inf" if math.isinf(v) else v
        return {"layer": self.name, "conv_index": self.index, "tensor": self.tensor,
                "alone_sqnr_db": num(self.alone.sqnr_db), "alone_cosine": self.alone.cosine,
                "accumulated_sqnr_db": num(self.accumulated.sqnr_db),
                "accumulated_cosine": self.accumulated.cosine}


@dataclass
class _Probe:
    """The three tensor names of one layer in the combined graph."""

    layer: LayerError
    ref: str
    acc: str
    iso: str | None


def quantized_convs(qdq: onnx.ModelProto) -> list[str]:
    """Names of the Conv nodes whose weights are dequantized int8 (the int8 layers), graph order."""
    made = producers(qdq)
    out = []
    for node in qdq.graph.node:
        if node.op_type == "Conv" and len(node.input) > 1:
            p = made.get(node.input[1])
            if p is not None and p.op_type == "DequantizeLinear":
                out.append(node.name)
    return out


def _cone(qdq: onnx.ModelProto, conv: onnx.NodeProto) -> list[onnx.NodeProto]:
    """The Conv plus the Q/DQ nodes feeding it (back to a float activation or initializers) and its
    output Q/DQ pair, in the int8 graph's (topological) order."""
    made_by_name = {o: n.name for n in qdq.graph.node for o in n.output}
    by_name = {n.name: n for n in qdq.graph.node}
    wanted = {conv.name}
    stack = list(conv.input)
    while stack:
        p = made_by_name.get(stack.pop())
        if p is not None and by_name[p].op_type in QDQ_OPS and p not in wanted:
            wanted.add(p)
            stack.extend(by_name[p].input)
    tail_in = conv.output[0]
    for op in QDQ_OPS:
        nxt = next((n for n in qdq.graph.node if n.op_type == op and tail_in in n.input[:1]), None)
        if nxt is None:
            break
        wanted.add(nxt.name)
        tail_in = nxt.output[0]
    return [n for n in qdq.graph.node if n.name in wanted]


def _last_output(cone: list[onnx.NodeProto]) -> str:
    return cone[-1].output[0]


def _renamed(node: onnx.NodeProto, prefix: str, keep: set[str], inits: set[str]) -> onnx.NodeProto:
    """A copy of ``node`` with tensors renamed ``prefix+name``, except names in ``keep`` (shared
    with the fp32 graph) and initializers (renamed ``q:`` like the int8 graph's)."""
    new = onnx.NodeProto()
    new.CopyFrom(node)
    new.name = prefix + node.name
    for j, name in enumerate(node.input):
        if name and name not in keep:
            new.input[j] = ("q:" if name in inits else prefix) + name
    for j, name in enumerate(node.output):
        new.output[j] = prefix + name
    return new


def combined_model(fp32: onnx.ModelProto, qdq: onnx.ModelProto) -> tuple[onnx.ModelProto, list[_Probe]]:
    """One graph computing the fp32 model, the int8 model and every int8 layer in isolation.

    Returns (model without graph outputs set, probes); :func:`with_outputs` picks the outputs.
    Raises BuildError when the two graphs do not match (different input or tensor names).
    """
    f_inputs = [i.name for i in fp32.graph.input]
    if f_inputs != [i.name for i in qdq.graph.input]:
        raise BuildError("the fp32 and int8 models have different inputs")
    f_tensors = {o for n in fp32.graph.node for o in n.output} | set(f_inputs)
    q_inits = {t.name for t in qdq.graph.initializer}
    graph = helper.make_graph(list(fp32.graph.node), "analysis", list(fp32.graph.input), [],
                              list(fp32.graph.initializer))
    keep = set(f_inputs)
    graph.node.extend(_renamed(n, "q:", keep, q_inits) for n in qdq.graph.node)
    for t in qdq.graph.initializer:
        c = onnx.TensorProto()
        c.CopyFrom(t)
        c.name = "q:" + t.name
        graph.initializer.append(c)
    convs = [n for n in fp32.graph.node if n.op_type == "Conv"]
    index = {n.name: i for i, n in enumerate(convs)}
    by_name = {n.name: n for n in qdq.graph.node}
    probes = []
    for k, name in enumerate(quantized_convs(qdq)):
        conv = by_name[name]
        ref = conv.output[0]
        if ref not in f_tensors:
            continue
        cone = _cone(qdq, conv)
        sources = {i for n in cone for i in n.input if i and i not in q_inits} - {o for n in cone for o in n.output}
        if not sources <= f_tensors:
            continue  # its activation comes from an int8-only tensor: no fp32 counterpart
        prefix = f"iso{k}:"
        graph.node.extend(_renamed(n, prefix, sources, q_inits) for n in cone)
        probes.append(_Probe(LayerError(name, index.get(name), ref), ref, "q:" + _last_output(cone),
                             prefix + _last_output(cone)))
    out = fp32.graph.output[0].name
    probes.append(_Probe(LayerError(OUTPUT_LAYER, None, out), out, "q:" + out, None))
    model = helper.make_model(graph, opset_imports=list(qdq.opset_import), ir_version=qdq.ir_version)
    return model, probes


def with_outputs(model: onnx.ModelProto, names: Iterable[str]) -> onnx.ModelProto:
    """A copy of ``model`` whose graph outputs are ``names`` (float tensors)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.output[:]
    m.graph.output.extend(helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names)
    return m


def _session(model: onnx.ModelProto, threads: int | None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # exact QDQ arithmetic
    if threads:
        so.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise BuildError(f"ONNX Runtime cannot load the analysis graph: {exc}") from exc


def analyze_layers(fp32_path: str | Path, qdq_path: str | Path, source: Iterable[np.ndarray], *,
                   max_bytes_per_run: int = DEFAULT_MAX_BYTES_PER_RUN, threads: int | None = None,
                   progress: Any = None) -> list[LayerError]:
    """Per-layer errors of the int8 QDQ model ``qdq_path`` against ``fp32_path`` over ``source``
    (re-iterable; each item a network input (1, C, H, W) float32). Graph order, network output
    last. ``progress`` (optional) is called once per image run. Raises BuildError."""
    fp32 = onnx.load(str(fp32_path))
    qdq = onnx.load(str(qdq_path))
    model, probes = combined_model(fp32, qdq)
    shaped = infer_shapes(fp32)
    sizes = {str(i): tensor_nbytes(shaped, p.ref) for i, p in enumerate(probes)}
    cost = {k: None if v is None else 3 * v for k, v in sizes.items()}
    in_name = fp32.graph.input[0].name
    for group in plan_groups(cost, max_bytes_per_run):
        mine = [probes[int(k)] for k in group]
        names = [n for p in mine for n in (p.ref, p.acc, p.iso) if n is not None]
        sess = _session(with_outputs(model, dict.fromkeys(names)), threads)
        order = list(dict.fromkeys(names))
        for x in source:
            got = dict(zip(order, sess.run(order, {in_name: x})))
            for p in mine:
                p.layer.accumulated.update(got[p.ref], got[p.acc])
                if p.iso is not None:
                    p.layer.alone.update(got[p.ref], got[p.iso])
            del got
            if progress is not None:
                progress()
        del sess
    return [p.layer for p in probes]


def ranked_layers(analysis: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The analysed int8 layers of an analysis result (its ``layers`` rows; the network output row
    left out), worst first: lowest SQNR of the layer quantized alone, ties broken by the
    accumulated SQNR."""
    def sq(v: Any) -> float:
        return float("inf") if v == "inf" else float(v)
    rows = [r for r in analysis["layers"] if r["conv_index"] is not None]
    return sorted(rows, key=lambda r: (sq(r["alone_sqnr_db"]), sq(r["accumulated_sqnr_db"])))
