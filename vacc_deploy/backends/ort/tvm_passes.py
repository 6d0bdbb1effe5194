"""The graph analyses TVM's ``relay.quantize`` runs before it rounds anything, on an ONNX graph.
Torch-free. Read at Apache TVM release v0.13.0; docs/vacc.md lists every rule with its source.

``quantize()`` (``python/tvm/relay/quantize/quantize.py``) runs ``partition()``, ``annotate()``,
calibrate, ``realize()`` in that order. Two parts of it decide *where* 8-bit rounding happens
beyond the per-op annotate rules (which :mod:`vacc_deploy.backends.ort.vacc_numerics` applies):

* **partition** (``_partition.py``, ``src/relay/quantize/partition.cc``): a conv's result, and what
  ``relu``/``clip``/``max_pool2d``/``add(x, constant)``/``multiply`` make of it, is a "partitioned"
  value. Where such a value is consumed by anything else -- another conv, an ``add`` whose other
  side is not partitioned, both sides of an ``add`` of two partitioned values, any op without a
  partition rule (``depth_to_space``, ``concatenate``, ``leaky_relu``, ``reshape``, ...), or the
  function's result -- ``QPartitionExprNode::Realize`` inserts ``annotation.cast_hint(int8)`` +
  ``stop_fusion``; annotate then quantizes a 32-bit value met by a ``cast_hint`` to int8
  (``_annotate.py`` ``cast_hint_rewrite``).
* **multiple references** (``annotate.cc`` ``QuantizeAnnotate``, ``fmulti_ref``; the counter of
  ``src/relay/transforms/forward_rewrite.cc``): an annotated value referenced more than once is
  quantized to int8 (``QAnnotateKind.INPUT``) once and every consumer reads that.

ONNX to Relay (TVM's ONNX frontend, then ``prerequisite_optimize``): ``Conv`` is ``nn.conv2d``, and
its bias, after ``CanonicalizeOps`` and ``FoldConstant``, an ``add`` of a constant (partitioned
like the conv); ``Relu``/``Clip``/``MaxPool``/``Add``/``Mul`` are ``nn.relu``/``clip``/
``nn.max_pool2d``/``add``/``multiply``; a ``Clip``'s bounds are attributes, not arguments. Every
other op type has no partition rule.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import onnx

#: Ops whose partition rule forwards a partitioned argument (``identity_partition_function``).
_PARTITION_FORWARD = {"Relu", "Clip", "MaxPool"}


@dataclass(frozen=True)
class Partition:
    """Where ``partition`` puts a ``cast_hint(int8)``: ``edges`` are (node index, input index)
    pairs of the graph's node list, ``outputs`` the graph outputs it wraps; ``values`` the tensors
    that are partitioned values."""

    edges: frozenset[tuple[int, int]]
    outputs: frozenset[str]
    values: frozenset[str]


def _is_conv(node: onnx.NodeProto, inits: set[str]) -> bool:
    return node.op_type == "Conv" and len(node.input) >= 2 and node.input[1] in inits


def partition(model: onnx.ModelProto) -> Partition:
    """Simulate ``QuantizePartition`` (``_partition.py``) on ``model``'s (topologically sorted)
    node list. A conv is partitioned whether or not ``skip_conv_layers`` names it: the skip is an
    annotate-time decision (``QuantizeContext.check_to_skip``)."""
    inits = {t.name for t in model.graph.initializer}
    part: set[str] = set()
    edges: set[tuple[int, int]] = set()
    for idx, node in enumerate(model.graph.node):
        ins = list(node.input)
        p = [bool(name) and name in part for name in ins]
        out = node.output[0] if node.output else ""
        if _is_conv(node, inits):  # conv2d_partition_function (+ add(conv, bias constant): forwarded)
            if p[0]:
                edges.add((idx, 0))
            part.add(out)
        elif node.op_type in _PARTITION_FORWARD:
            if p and p[0]:
                part.add(out)
        elif node.op_type == "Add" and len(ins) == 2:  # add_partition_generic
            if p[0] and p[1]:
                edges |= {(idx, 0), (idx, 1)}
                part.add(out)
            elif p[1]:
                edges.add((idx, 1))
            elif p[0]:
                if ins[1] in inits:
                    part.add(out)
                else:
                    edges.add((idx, 0))
        elif node.op_type == "Mul" and len(ins) == 2:  # mul_partition_generic
            if p[0] or p[1]:
                edges.add((idx, 0) if p[0] else (idx, 1))
                part.add(out)
        else:  # no partition rule: ForwardRewrite realizes every partitioned argument
            edges |= {(idx, j) for j, pj in enumerate(p) if pj}
    outputs = frozenset(o.name for o in model.graph.output if o.name in part)
    return Partition(frozenset(edges), outputs, frozenset(part))


def reference_counts(model: onnx.ModelProto) -> Counter[str]:
    """How often each tensor is referenced: once per node input slot reading it, once per graph
    output (TVM's ``GetExprRefCount`` counts the function body too). After partition each consumer
    reads a tensor directly or through its own ``cast_hint``, so the ONNX counts are TVM's."""
    refs: Counter[str] = Counter(name for node in model.graph.node for name in node.input if name)
    refs.update(o.name for o in model.graph.output)
    return refs
