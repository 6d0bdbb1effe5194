"""Cross-layer channel equalization of an fp32 ONNX model, exact in float. Torch-free.

A *channel space* is a set of feature channels that only Convs write (their output rows) and only
Convs read (their input columns), passing in between only through ops that commute with a positive
per-channel scale: LeakyRelu / Relu / PRelu, nearest or linear Resize, max or average pooling, Mul
by a scalar constant, Add of two tensors of the same space (a residual stream), and Concat along the
channel axis (a dense block's concatenation holds several spaces side by side). Dividing channel
``c`` of a space by ``alpha[c] > 0`` in every producer (weight row and bias) and multiplying the
matching input column of every consumer by ``alpha[c]`` leaves the network's function unchanged
(up to float rounding) while changing what an int8 build quantizes: each activation tensor has one
uint8 range for all its channels, so a few channels with large values (RRDBNet's growth features
reach 10x the median channel's range) cost every other channel its resolution.

:func:`channel_spaces` finds the spaces; :func:`apply_scales` rescales a model. A space that
touches anything else (a graph input or output, a Conv with groups, an Add with a constant, a Concat
of a space with a non-space, any other op) is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

#: Ops with f(alpha * x) = alpha * f(x) per channel for alpha > 0 (one data input).
HOMOGENEOUS = frozenset({"Relu", "LeakyRelu", "PRelu", "Resize", "MaxPool", "AveragePool", "Identity",
                         "Dropout"})

Segment = tuple[int, int, int]  # (space id, first channel in the space, channel count); id -1: not scalable


@dataclass
class Space:
    """One channel space: ``channels`` wide, written by ``producers`` (Conv names), read by
    ``consumers`` ((Conv name, input channel offset)), carried by ``tensors`` ((tensor name, channel
    offset): every tensor a Conv reads that holds this space, i.e. what int8 quantizes)."""

    channels: int
    producers: list[str] = field(default_factory=list)
    consumers: list[tuple[str, int]] = field(default_factory=list)
    tensors: list[tuple[str, int]] = field(default_factory=list)


class _Spaces:
    """Union-find over spaces of equal width; ``bad`` spaces are not scalable."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.width: list[int] = []
        self.bad: set[int] = set()

    def new(self, width: int) -> int:
        self.parent.append(len(self.parent))
        self.width.append(width)
        return len(self.parent) - 1

    def find(self, s: int) -> int:
        while self.parent[s] != s:
            self.parent[s] = self.parent[self.parent[s]]
            s = self.parent[s]
        return s

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra
            if rb in self.bad:
                self.bad.add(ra)

    def spoil(self, segments: list[Segment]) -> None:
        for s, _, _ in segments:
            if s >= 0:
                self.bad.add(self.find(s))


def _attr(node: onnx.NodeProto, name: str, default: object) -> object:
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _is_scalar(name: str, inits: dict[str, onnx.TensorProto]) -> bool:
    return name in inits and int(np.prod(inits[name].dims)) == 1


def _same_layout(a: list[Segment], b: list[Segment]) -> bool:
    return len(a) == len(b) == 1 and a[0][1] == b[0][1] == 0 and a[0][2] == b[0][2]


def _walk(model: onnx.ModelProto, sp: _Spaces) -> tuple[dict[str, list[Segment]], list[tuple[str, str, list[Segment]]], dict[str, int]]:
    """Assign channel segments to tensors in graph order; returns (segments, conv reads, producer
    space of each Conv). Unknown tensors (graph inputs, outputs of other ops) get no entry."""
    inits = {t.name: t for t in model.graph.initializer}
    seg: dict[str, list[Segment]] = {}
    reads: list[tuple[str, str, list[Segment]]] = []
    produced: dict[str, int] = {}

    def get(name: str) -> list[Segment] | None:
        return seg.get(name)

    for node in model.graph.node:
        ins = [get(i) for i in node.input]
        op = node.op_type
        if op == "Conv":
            if ins[0] is not None:
                if _attr(node, "group", 1) != 1 or node.input[1] not in inits:
                    sp.spoil(ins[0])
                else:
                    reads.append((node.name, node.input[0], ins[0]))
            if node.input[1] in inits and _attr(node, "group", 1) == 1:
                s = sp.new(int(inits[node.input[1]].dims[0]))
                produced[node.name] = s
                seg[node.output[0]] = [(s, 0, sp.width[s])]
            continue
        known = [x for x in ins if x is not None]
        if not known:
            continue
        if op in HOMOGENEOUS and ins[0] is not None and all(x is None for x in ins[1:]) \
                and (op != "Resize" or _attr(node, "mode", b"nearest") in (b"nearest", b"linear")):
            seg[node.output[0]] = ins[0]
        elif op == "Mul" and len(known) == 1 and any(_is_scalar(i, inits) for i in node.input):
            seg[node.output[0]] = known[0]
        elif op == "Add" and len(known) == 2 and _same_layout(ins[0], ins[1]):
            sp.union(ins[0][0][0], ins[1][0][0])
            seg[node.output[0]] = ins[0]
        elif op == "Concat" and _attr(node, "axis", 0) == 1 and len(known) == len(ins):
            seg[node.output[0]] = [s for x in ins for s in x]  # type: ignore[union-attr]
        else:
            for x in known:
                sp.spoil(x)
    for out in model.graph.output:
        if out.name in seg:
            sp.spoil(seg[out.name])
    return seg, reads, produced


def channel_spaces(model: onnx.ModelProto) -> dict[int, Space]:
    """The scalable channel spaces of ``model`` (Conv weights must be initializers), by id."""
    sp = _Spaces()
    _, reads, produced = _walk(model, sp)
    spaces: dict[int, Space] = {}

    def space(s: int) -> Space | None:
        root = sp.find(s)
        if root in sp.bad:
            return None
        return spaces.setdefault(root, Space(sp.width[root]))

    for conv, s in produced.items():
        target = space(s)
        if target is not None:
            target.producers.append(conv)
    for conv, tensor, segments in reads:
        offset = 0
        for s, start, n in segments:
            target = space(s)
            if target is not None:
                assert start == 0 and n == target.channels, "a space is only ever carried whole"
                target.consumers.append((conv, offset))
                if (tensor, offset) not in target.tensors:
                    target.tensors.append((tensor, offset))
            offset += n
    return {k: v for k, v in spaces.items() if v.producers and v.consumers}


def apply_scales(model: onnx.ModelProto, spaces: dict[int, Space], alphas: dict[int, np.ndarray]) -> int:
    """Divide each space's channels by ``alphas[id]`` (positive, one per channel) in its producers
    and multiply its consumers' columns by it; edits ``model`` in place (initializers shared by
    several Convs must be untied first). Returns how many initializer updates it made (a Conv
    both producing and consuming a space counts twice)."""
    inits = {t.name: t for t in model.graph.initializer}
    nodes = {n.name: n for n in model.graph.node}
    changed = 0

    def update(name: str, fn) -> None:
        nonlocal changed
        t = inits[name]
        t.CopyFrom(numpy_helper.from_array(fn(numpy_helper.to_array(t).astype(np.float64)).astype(np.float32), name))
        changed += 1

    for sid, alpha in alphas.items():
        s = spaces[sid]
        a = np.asarray(alpha, dtype=np.float64)
        if a.shape != (s.channels,) or not np.all(a > 0) or not np.all(np.isfinite(a)):
            raise ValueError(f"space {sid}: expected {s.channels} positive scales")
        for conv in s.producers:
            node = nodes[conv]
            update(node.input[1], lambda w: w / a[:, None, None, None])
            if len(node.input) > 2 and node.input[2]:
                update(node.input[2], lambda b: b / a)
        for conv, off in s.consumers:
            def scale_cols(w: np.ndarray, off: int = off) -> np.ndarray:
                w[:, off:off + len(a)] *= a[None, :, None, None]
                return w
            update(nodes[conv].input[1], scale_cols)
    return changed


#: The scales :func:`median_scales` chooses are clipped to [1 / MAX_SCALE, MAX_SCALE].
MAX_SCALE = 64.0


def median_scales(spaces: dict[int, Space], ranges: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[int, np.ndarray]:
    """Scales that give every channel of a space the same largest magnitude, its space's median:
    ``alpha[c] = a[c] / median(a)`` with ``a[c]`` the largest ``|x|`` of channel ``c`` over the
    space's quantized tensors (``ranges``: per-channel (min, max) of each tensor of
    ``Space.tensors``, e.g. from :func:`vacc_deploy.backends.ort.conv_stats.channel_ranges`).
    Channels never seen non-zero keep 1; scales are clipped to ``MAX_SCALE`` either way."""
    alphas = {}
    for sid, s in spaces.items():
        a = np.zeros(s.channels)
        for tensor, off in s.tensors:
            lo, hi = ranges[tensor]
            a = np.maximum(a, np.maximum(np.abs(lo), np.abs(hi))[off:off + s.channels])
        live = a > 0
        if not live.any():
            continue
        alpha = np.ones(s.channels)
        alpha[live] = np.clip(a[live] / np.median(a[live]), 1.0 / MAX_SCALE, MAX_SCALE)
        alphas[sid] = alpha
    return alphas
