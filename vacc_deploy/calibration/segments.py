"""Cut a fixed-shape ONNX model into a chain of consecutive segments under a byte budget.

A segment is the nodes ``[start, stop)`` of the (topologically sorted) graph. It reads the tensors
that cross its start cut (the model input, or outputs of earlier segments) and returns the
calibrated tensors it produces plus the tensors later segments read. Its planned size is the fp32
bytes of its inputs and outputs plus its largest internal tensor, from onnx shape inference (a
tensor of unknown size counts 0). Cuts are chosen greedily: each segment takes as many nodes as the
budget allows and, among the second half of those positions, ends where the fewest bytes cross; a
single node larger than the budget gets a segment of its own. Nodes after the last calibrated
tensor are not run.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import onnx

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Segment:
    """Nodes ``[start, stop)``; ``inputs`` read from outside, ``outputs`` = ``calibrated`` produced
    here then handed-over tensors later segments read; ``release``: handed-over tensors (inputs or
    outputs) that no later segment reads; ``nbytes``: planned size in bytes."""

    start: int
    stop: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    calibrated: tuple[str, ...]
    release: tuple[str, ...]
    nbytes: int


class _Graph:
    """Producer / consumer indices and sizes of the non-initializer tensors of a model."""

    def __init__(self, model: onnx.ModelProto, sizes: dict[str, int | None], calibrated: Sequence[str]) -> None:
        inits = {init.name for init in model.graph.initializer}
        self.producer: dict[str, int] = {i.name: -1 for i in model.graph.input if i.name not in inits}
        self.consumers: dict[str, list[int]] = {}
        for index, node in enumerate(model.graph.node):
            for name in node.input:
                if name and name not in inits:
                    self.consumers.setdefault(name, []).append(index)
            for name in node.output:
                if name:
                    self.producer[name] = index
        self.calibrated = set(calibrated)
        produced = [self.producer[n] for n in calibrated if self.producer.get(n, -1) >= 0]
        self.end = max(produced) + 1 if produced else 0
        self.size = {n: self._known(n, sizes.get(n)) for n in self.producer}

    @staticmethod
    def _known(name: str, size: int | None) -> int:
        if size is None:
            log.warning("size of %s unknown: counted as 0 bytes when cutting segments", name)
            return 0
        return size

    def read_in(self, name: str, a: int, b: int) -> bool:
        """Whether a node of [a, b) reads ``name``."""
        uses = self.consumers.get(name, [])
        i = bisect.bisect_left(uses, a)
        return i < len(uses) and uses[i] < min(b, self.end)

    def io(self, a: int, b: int) -> tuple[list[str], list[str], list[str], int]:
        """Inputs, outputs, internal tensors of [a, b) and its planned bytes."""
        ins, outs, internal = [], [], []
        for name, p in self.producer.items():
            if p < a:
                if self.read_in(name, a, b):
                    ins.append(name)
            elif p < b:
                later = self.read_in(name, b, self.end)
                (outs if later or name in self.calibrated else internal).append(name)
        nbytes = sum(self.size[n] for n in ins + outs) + max((self.size[n] for n in internal), default=0)
        return ins, outs, internal, nbytes

    def crossing(self, b: int) -> int:
        """Bytes of the tensors produced before ``b`` and read at or after it."""
        return sum(self.size[n] for n, p in self.producer.items() if p < b and self.read_in(n, b, self.end))


def _next_cut(g: _Graph, a: int, max_bytes: int) -> int:
    feasible = [a + 1]
    produced = 0
    for b in range(a + 1, g.end + 1):
        produced += sum(g.size[n] for n, p in g.producer.items() if p == b - 1 and n in g.calibrated)
        if produced > max_bytes:
            break
        if g.io(a, b)[3] <= max_bytes:
            feasible.append(b)
    b_max = max(feasible)
    if b_max == g.end:
        return b_max
    half = [b for b in feasible if b >= a + (b_max - a + 1) // 2]
    return min(half, key=lambda b: (g.crossing(b), -b))


def plan_segments(model: onnx.ModelProto, sizes: dict[str, int | None], calibrated: Sequence[str],
                  max_bytes: int) -> list[Segment]:
    """Segments covering every node up to the last one producing a tensor of ``calibrated``.

    ``sizes`` maps tensor names to fp32 bytes (None: unknown); ``model`` is topologically sorted.
    """
    g = _Graph(model, sizes, calibrated)
    cuts = [0]
    while cuts[-1] < g.end:
        cuts.append(_next_cut(g, cuts[-1], max_bytes))
    plans = []
    for a, b in zip(cuts, cuts[1:]):
        ins, outs, _, nbytes = g.io(a, b)
        cal = [n for n in outs if n in g.calibrated]
        plans.append((a, b, ins, cal + [n for n in outs if n not in g.calibrated and n not in cal], cal, nbytes))
    segments = []
    for i, (a, b, ins, outs, cal, nbytes) in enumerate(plans):
        later = {n for plan in plans[i + 1:] for n in plan[2]}
        release = tuple(n for n in (*ins, *outs) if n not in later)
        segments.append(Segment(a, b, tuple(ins), tuple(outs), tuple(cal), release, nbytes))
    return segments


def plan_groups(sizes: dict[str, int | None], max_bytes: int) -> list[list[str]]:
    """Split tensor names (in order) into groups whose summed size is at most ``max_bytes``.

    A tensor of unknown size (None) or larger than the budget gets a group of its own.
    """
    groups: list[list[str]] = []
    current: list[str] = []
    used = 0
    for name, size in sizes.items():
        if size is None or size > max_bytes:
            if size is None:
                log.warning("size of %s unknown: calibrating it in a run of its own", name)
            groups.append([name])
            continue
        if current and used + size > max_bytes:
            groups.append(current)
            current, used = [], 0
        current.append(name)
        used += size
    if current:
        groups.append(current)
    return groups


def segment_model(extractor: onnx.utils.Extractor, segment: Segment) -> onnx.ModelProto:
    """The sub-model of ``segment`` (its nodes, the initializers they read, its inputs and outputs)."""
    return extractor.extract_model(list(segment.inputs), list(segment.outputs))
