"""TVM's annotate rules (``python/tvm/relay/quantize/_annotate.py``, release v0.13.0) applied to an
ONNX graph, emitting the ``vacc`` emulation through :class:`vacc_deploy.backends.ort.vacc_numerics._Emitter`.
Torch-free. docs/vacc.md lists every rule with its source file.

Kinds: ``"input"`` = ``QAnnotateKind.INPUT`` (an 8-bit value), ``"activation"`` = ``ACTIVATION``
(a 32-bit value: a conv's int32 accumulator), None = float. Before an op's own rule sees an
argument, two things may quantize it to int8 (:mod:`vacc_deploy.backends.ort.tvm_passes`): a value with
more than one reference (``fmulti_ref``), and a 32-bit value at a ``cast_hint`` the partition pass
put on that edge. Then per op:

* ``Conv`` (``conv2d_rewrite``): data to int8 unless already INPUT, weight WEIGHT, bias (an
  ``add`` of a constant after ``CanonicalizeOps``) WEIGHT per tensor; output ACTIVATION. A conv in
  ``skip_conv_layers`` returns None: float weights, float output; its argument is what the two
  rules above made of it (a 32-bit producer is still rounded to int8 at its ``cast_hint``).
* ``Add`` (``add_rewrite``): float + quantized -> the float side int8, INPUT; quantized + float ->
  the float side int8 (a constant: WEIGHT), ACTIVATION; INPUT + INPUT -> INPUT; ACTIVATION +
  ACTIVATION -> the right side int8, ACTIVATION; mixed -> ACTIVATION. Realized at the smaller
  of the two scales (``AddRealize``/``UnifyDTypeScale``).
* ``Mul`` (``multiply_rewrite``): one quantized side -> it to int8 if ACTIVATION, the other int8
  (a constant: WEIGHT); ACTIVATION. Two quantized sides: TVM raises ValueError; kept float here.
* ``Concat`` (``concatenate_rewrite``): float inputs get a 32-bit quantize (a clip to their
  threshold); ACTIVATION.
* ``MaxPool`` (``pool2d_rewrite``): ACTIVATION -> int8; INPUT.
* ``Relu``, ``Clip``, ``Reshape``, ``Transpose``, ``Slice``, ``Flatten``, ``AveragePool``
  (``identity_rewrite``): the kind passes through.
* anything else (``DepthToSpace``, ``LeakyRelu``, ``Resize``, ``Sub``, ``Identity`` = ``copy``,
  ...): no rule; float on the dequantized argument, float output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import onnx

from vacc_deploy.backends.ort.tvm_passes import partition, reference_counts

if TYPE_CHECKING:
    from vacc_deploy.backends.ort.vacc_numerics import Kind, _Emitter

_PASS_THROUGH = {"Relu", "Clip", "Reshape", "Transpose", "Slice", "Flatten", "AveragePool"}
Arg = tuple[str, "Kind | None"]


def _use(e: _Emitter, name: str, refs: int, cast_hint: bool) -> Arg:
    """How a consumer reads tensor ``name``: int8 when it is annotated and referenced more than
    once (``fmulti_ref``), or 32-bit at a ``cast_hint`` (``cast_hint_rewrite``); else as it is. An
    INPUT value at a ``cast_hint`` is ``Cast`` to int8 as it is (``CastHintRealize``), which we
    compute exactly (docs/vacc.md, upstream quirks)."""
    k = e.kind.get(name)
    if k is not None and (refs > 1 or (cast_hint and k == "activation")):
        return e.int8(name), "input"
    return name, k


def _side(e: _Emitter, name: str) -> str:
    """The non-quantized side of an add/multiply: a constant as a WEIGHT, else int8 (INPUT)."""
    return e.weight(name, False) if name in e.inits else e.int8(name)


def _add(e: _Emitter, a: Arg, b: Arg, names: list[str]) -> tuple[list[str], Kind | None, float | None]:
    (va, ka), (vb, kb) = a, b
    if ka is None and kb is None:
        return [va, vb], None, None
    if ka is None:
        ins, kind = [e.int8(names[0]), vb], "input"
    elif kb is None:
        ins, kind = [va, _side(e, names[1])], "activation"
    elif ka == kb == "activation":
        ins, kind = [va, e.int8(names[1])], "activation"
    else:
        ins, kind = [va, vb], "input" if ka == kb == "input" else "activation"
    ins, scale = e.unify(ins)
    return ins, kind, scale


def _mul(e: _Emitter, a: Arg, b: Arg, names: list[str]) -> tuple[list[str], Kind | None]:
    (va, ka), (vb, kb) = a, b
    if (ka is None) == (kb is None):  # both float; both quantized: TVM raises ValueError
        return [va, vb], None
    if ka is not None:
        return [e.int8(names[0]) if ka == "activation" else va, _side(e, names[1])], "activation"
    return [_side(e, names[0]), e.int8(names[1]) if kb == "activation" else vb], "activation"


def _rewrite(e: _Emitter, node: onnx.NodeProto, args: list[Arg], skipped: bool) -> tuple[list[str], Kind | None, float | None]:
    """New inputs of ``node``, the kind of its outputs (None: float) and their int8-domain scale."""
    ins = [v for v, _ in args]
    kinds = [k for _, k in args]
    op = node.op_type
    if op == "Conv" and len(ins) >= 2 and node.input[1] in e.inits:
        if skipped:
            return ins, None, None
        x = ins[0] if kinds[0] == "input" else e.int8(node.input[0])
        new = [x, e.weight(node.input[1], e.per_channel)]
        if len(ins) > 2 and ins[2]:
            new.append(e.weight(node.input[2], False))  # bias: add(conv, const) -> WEIGHT, per tensor
        return new, "activation", None
    if op == "Add" and len(ins) == 2:
        return _add(e, args[0], args[1], list(node.input))
    if op == "Mul" and len(ins) == 2:
        return (*_mul(e, args[0], args[1], list(node.input)), None)
    if op == "Concat":
        if all(k is None for k in kinds):
            return ins, None, None
        new, scale = e.unify([e.clip32(n) if k is None else v for (v, k), n in zip(args, node.input)])
        return new, "activation", scale
    if op == "MaxPool" and kinds and kinds[0] is not None:
        x = e.int8(node.input[0]) if kinds[0] == "activation" else ins[0]
        return [x], "input", e.coarse.get(x)
    if op in _PASS_THROUGH and kinds and kinds[0] is not None:
        return ins, kinds[0], e.coarse.get(ins[0])
    return ins, None, None


def annotate(e: _Emitter, model: onnx.ModelProto, float_convs: set[str]) -> tuple[set[str], list[str]]:
    """Emit the emulation of ``model`` (graph outputs already renamed, see ``_rename_outputs``)
    into ``e``: every node with its rewritten inputs, then an Identity per graph output from the
    value TVM returns. Returns (op types left float, graph outputs rounded to int8)."""
    from onnx import helper

    part = partition(model)
    refs = reference_counts(model)
    float_ops: set[str] = set()
    for idx, node in enumerate(model.graph.node):
        args = [(name, None) if not name or name in e.inits else _use(e, name, refs[name], (idx, j) in part.edges)
                for j, name in enumerate(node.input)]
        ins, kind, scale = _rewrite(e, node, args, node.name in float_convs)
        new = onnx.NodeProto()
        new.CopyFrom(node)
        del new.input[:]
        new.input.extend(ins)
        e.nodes.append(new)
        for o in node.output:
            if kind is not None:
                e.kind[o] = kind
            if scale is not None:
                e.coarse[o] = scale
        if kind is None and node.op_type != "Conv":
            float_ops.add(node.op_type)
    rounded = []
    for out in model.graph.output:
        value, _ = _use(e, out.name, refs[out.name], out.name in part.outputs)
        if value != out.name:
            rounded.append(out.name.removesuffix("__vacc_fp"))
        e.nodes.append(helper.make_node("Identity", [value], [out.name.removesuffix("__vacc_fp")],
                                        name=f"{out.name}__vacc_out"))
    return float_ops, rounded
