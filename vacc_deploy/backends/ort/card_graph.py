"""The graph an int8 build for the VACC card starts from: the export with every 1x1 Conv whose
weight matrix is the identity written as the bias ``Add`` it computes. Torch-free.

Why: SR networks shift the image by a fixed mean with 1x1 "mean shift" convs (LESRCNN and EDSR:
``sub_mean`` before the first conv, ``add_mean`` after the last; identity weights, bias -/+ the
dataset mean). TVM's quantizer (vamc's, Apache TVM v0.13.0 ``_annotate.py``) treats each as a
conv: its input is rounded to int8, its weights too (under ``weight_scale: power2`` the identity's
1.0 becomes 127/128, a 0.8 % gain error on the output), and ``skip_conv_layers`` must spend an
entry on each to keep it float. As an ``Add`` of a constant, the input side stays float (an add
of two unannotated values is not annotated: ``add_rewrite``) and the output side is a constant
added to the int32 result of the conv before it (``add_rewrite``: a constant beside an annotated
value is quantized as a WEIGHT, as a conv bias is). docs/vacc.md, "The card's graph".

The function is the same to the bit: for finite inputs ``1 * x_i + sum_j 0 * x_j + b == x_i + b``.
Conv indices (``skip_conv_layers``, ``--skip-layers``) count the Convs of this graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from vacc_deploy import artifacts
from vacc_deploy.backends.ort.qdq import load_model, save_checked

#: Bump when the rewrite changes (cached rewritten models are keyed by it).
CARD_GRAPH_FORMAT = 1


def _ints(node: onnx.NodeProto, name: str) -> list[int] | None:
    return next((list(a.ints) for a in node.attribute if a.name == name), None)


def _plain_1x1(node: onnx.NodeProto) -> bool:
    """A Conv whose attributes make it a per-pixel matrix product (group 1, stride 1, no padding)."""
    group = next((a.i for a in node.attribute if a.name == "group"), 1)
    auto_pad = next((a.s.decode() for a in node.attribute if a.name == "auto_pad"), "NOTSET")
    return (group == 1 and auto_pad in ("NOTSET", "VALID")
            and all(v == 1 for v in (_ints(node, "strides") or [1]) + (_ints(node, "dilations") or [1]))
            and not any(_ints(node, "pads") or [0]) and (_ints(node, "kernel_shape") or [1, 1]) == [1, 1])


def identity_convs(model: onnx.ModelProto) -> list[str]:
    """Names of the Conv nodes that compute ``x + bias`` (or ``x``): 1x1, group 1, stride 1, no
    padding, and an initializer weight of shape (C, C, 1, 1) equal to the identity matrix."""
    inits = {t.name: t for t in model.graph.initializer}
    found = []
    for node in model.graph.node:
        if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in inits or not _plain_1x1(node):
            continue
        w = numpy_helper.to_array(inits[node.input[1]])
        if w.ndim == 4 and w.shape[0] == w.shape[1] and w.shape[2:] == (1, 1) and \
                np.array_equal(w[:, :, 0, 0], np.eye(w.shape[0], dtype=w.dtype)):
            found.append(node.name)
    return found


def card_graph(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """(a copy of ``model`` with each :func:`identity_convs` node replaced by ``Add(x, bias)``
    (bias as a (1, C, 1, 1) initializer; an ``Identity`` without bias) writing the same output
    tensor, the names of the replaced Convs). Initializers no node reads any more are dropped."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    names = set(identity_convs(out))
    if not names:
        return out, []
    inits = {t.name: t for t in out.graph.initializer}
    nodes = []
    for node in out.graph.node:
        if node.name not in names:
            nodes.append(node)
            continue
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        if bias is None:
            nodes.append(helper.make_node("Identity", [node.input[0]], list(node.output), name=f"{node.name}__as_add"))
            continue
        b = numpy_helper.to_array(inits[bias])
        shaped = numpy_helper.from_array(b.reshape(1, -1, 1, 1), f"{node.name}__bias")
        out.graph.initializer.append(shaped)
        nodes.append(helper.make_node("Add", [node.input[0], shaped.name], list(node.output), name=f"{node.name}__as_add"))
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    used = {i for n in out.graph.node for i in n.input}
    kept = [t for t in out.graph.initializer if t.name in used]
    del out.graph.initializer[:]
    out.graph.initializer.extend(kept)
    return out, [n for n in (node.name for node in model.graph.node) if n in names]


#: sha256 of the models this process found no identity conv in (a card graph among them): not
#: parsed again, since a search builds dozens of trials from the same model.
_PLAIN: set[str] = set()


def card_graph_model(model_path: Path, row_dir: Path) -> tuple[Path, list[str]]:
    """(path, replaced Conv names) of the card graph of the fp32 ``model_path``: ``model_path``
    itself when it has no identity conv (e.g. it is a card graph already), else the rewrite cached
    under ``<row dir>/card_graph/`` (keyed by model and :data:`CARD_GRAPH_FORMAT`, written
    atomically, with a JSON record of the replaced Convs). The model is read only when neither
    answer is known already. Raises BuildError (unreadable model)."""
    digest = artifacts.file_digest(model_path)
    if digest in _PLAIN:
        return Path(model_path), []
    key = artifacts.stage_key({"format": CARD_GRAPH_FORMAT, "model": digest})
    path = row_dir / "card_graph" / f"model-{key}.onnx"
    meta = path.with_suffix(".json")
    if path.is_file() and meta.is_file():
        try:
            return path, list(artifacts.read_json(meta)["replaced"])
        except (ValueError, OSError, KeyError):
            pass
    model = load_model(model_path)
    if not identity_convs(model):
        _PLAIN.add(digest)
        return Path(model_path), []
    rewritten, names = card_graph(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checked(rewritten, path, "the card-graph rewrite")
    artifacts.atomic_write_json(meta, {"format": CARD_GRAPH_FORMAT, "source": str(model_path), "replaced": names})
    return path, names
