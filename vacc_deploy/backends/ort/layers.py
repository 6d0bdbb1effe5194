"""Which Conv layers an int8 build keeps in float: the layer order both the ONNX Runtime build and
the vamc YAML count in, the edge convs, ``skip_layers`` names or indices. Torch-free."""

from __future__ import annotations

from pathlib import Path

import onnx

from vacc_deploy.backends.ort.options import BuildOptions
from vacc_deploy.errors import UsageError


def tvm_conv_order(model: onnx.ModelProto) -> list[str]:
    """Conv node names in the order TVM's annotate pass counts them for ``skip_conv_layers``
    (``quantize.py`` ``QuantizeContext.check_to_skip``, called from a post-order rewrite of the
    expression): depth-first from the graph outputs, inputs in argument order, a node after its
    inputs. For a chain this is graph order; branches are visited first-argument first."""
    producer = {o: n for n in model.graph.node for o in n.output}
    seen: set[int] = set()
    order: list[str] = []
    stack: list[tuple[onnx.NodeProto, int]] = []
    for out in model.graph.output:
        if out.name in producer and id(producer[out.name]) not in seen:
            stack.append((producer[out.name], 0))
            seen.add(id(producer[out.name]))
        while stack:
            node, i = stack.pop()
            if i < len(node.input):
                stack.append((node, i + 1))
                child = producer.get(node.input[i])
                if child is not None and id(child) not in seen:
                    seen.add(id(child))
                    stack.append((child, 0))
            elif node.op_type == "Conv":
                order.append(node.name)
    return order


def conv_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the Conv nodes in the order TVM's quantizer counts them (index i = vamc
    ``skip_conv_layers`` index i; :func:`tvm_conv_order`: graph
    order for a chain), then any Conv no graph output depends on, in graph order."""
    order = tvm_conv_order(model)
    return order + [n.name for n in model.graph.node if n.op_type == "Conv" and n.name not in order]


def _is_spatial(node: onnx.NodeProto, shapes: dict[str, tuple[int, ...]]) -> bool:
    kernel = next((list(a.ints) for a in node.attribute if a.name == "kernel_shape"), None)
    kernel = kernel or list(shapes.get(node.input[1], (0, 0, 1, 1))[2:])
    return any(k > 1 for k in kernel)


def edge_convs(model: onnx.ModelProto) -> list[str]:
    """The Conv layers that touch the image: in graph order, every Conv up to and including the
    first one with a spatial kernel (so a 1x1 mean-shift conv before it counts too), and likewise
    from the end. Keeping these in float costs little speed (3-channel input or output) and saves
    much accuracy in SR networks (measured in docs/accuracy.md)."""
    shapes = {t.name: tuple(t.dims) for t in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    chosen: list[str] = []
    for seq in (convs, list(reversed(convs))):
        for node in seq:
            if node.name not in chosen:
                chosen.append(node.name)
            if _is_spatial(node, shapes):
                break
    return chosen


def float_layers(model_path: Path, opts: BuildOptions) -> tuple[list[str], list[int]]:
    """(names, sorted 0-based Conv indices) of the Conv layers an int8 build keeps in float."""
    return float_layers_of(onnx.load(str(model_path), load_external_data=False), opts)


def float_layers_of(model: onnx.ModelProto, opts: BuildOptions) -> tuple[list[str], list[int]]:
    """:func:`float_layers` of a loaded model."""
    convs = conv_nodes(model)
    edges = edge_convs(model) if opts.float_edges else []
    names, _ = resolve_skip_layers(convs, opts.skip_layers)
    names = sorted(set(names) | set(edges), key=convs.index)
    return names, [convs.index(n) for n in names]


def float_activations(model: onnx.ModelProto, float_convs: list[str]) -> list[str]:
    """Relu / Clip nodes that only read the output of a Conv kept in float: they stay float too.
    (Quantized, they would round the float conv's output to uint8 for nothing: ORT folds a Relu
    into the range of an int8 conv's output, never of a float one.)"""
    producer = {o: n.name for n in model.graph.node for o in n.output}
    chosen = set(float_convs)
    return [n.name for n in model.graph.node
            if n.op_type in ("Relu", "Clip") and producer.get(n.input[0]) in chosen]


def resolve_skip_layers(convs: list[str], skips: tuple[str, ...]) -> tuple[list[str], list[int]]:
    """Map ``skip_layers`` items (Conv node names or 0-based Conv indices) to (names, indices),
    given the model's Conv node names in graph order (:func:`conv_nodes`).

    Raises UsageError (option ``skip_layers``) naming an unknown layer and how to find the names.
    """
    names, indices = [], []
    for item in skips:
        if item.isdigit() and int(item) < len(convs):
            idx = int(item)
        elif item in convs:
            idx = convs.index(item)
        else:
            raise UsageError(f"no Conv layer '{item}' (use a name of the {len(convs)} Conv nodes, e.g. "
                             f"'{convs[0]}', or an index 0..{len(convs) - 1})", option="skip_layers")
        names.append(convs[idx])
        indices.append(idx)
    return names, sorted(set(indices))
