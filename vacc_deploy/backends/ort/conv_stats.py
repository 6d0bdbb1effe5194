"""Second moments of Conv inputs over calibration images, for error-compensating weight rounding
(:mod:`.weight_rounding`). Torch-free.

For a Conv with ``K = Cin * kh * kw`` weights per output channel, ``H = E[x x^T]`` is the (K, K)
mean outer product of its input patches (im2col columns, zero padding included). It is estimated
from ``pixels`` output positions drawn at random (seeded) in each of the first ``images`` samples:
patches of one image are strongly correlated, so a few thousand rows from several images estimate
H about as well as every pixel of fewer images, at a fraction of the cost (the products cost
``2 * pixels * K^2`` flops per Conv and image). Inputs stream through the calibration chain
(:func:`vacc_deploy.calibration.collect.open_chain`), one segment at a time; when the matrices of
all Convs would exceed ``max_bytes`` (float32) they are gathered in groups, one pass over the
images per group.

The calibration pass itself could collect these (it sees every Conv input already); it does not
today because only this optional rounding needs them and they cost far more than range statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import islice

import numpy as np
import onnx

from vacc_deploy.calibration.collect import CalibrationSource, CallableSource, infer_shapes, open_chain, stream_chain
from vacc_deploy.errors import BuildError

DEFAULT_IMAGES = 16
DEFAULT_PIXELS = 512
DEFAULT_MAX_BYTES = 512_000_000


def _attr(node: onnx.NodeProto, name: str, default: list[int]) -> list[int]:
    for a in node.attribute:
        if a.name == name:
            return list(a.ints)
    return default


class _ConvPatches:
    """Draws patches of one Conv's input at random output positions."""

    def __init__(self, node: onnx.NodeProto, kernel: tuple[int, int]) -> None:
        self.kernel = kernel
        self.strides = _attr(node, "strides", [1, 1])
        self.dilations = _attr(node, "dilations", [1, 1])
        self.pads = _attr(node, "pads", [0, 0, 0, 0])
        auto_pad = next((a.s.decode() for a in node.attribute if a.name == "auto_pad"), "NOTSET")
        if auto_pad != "NOTSET":
            raise BuildError(f"Conv {node.name!r}: auto_pad is not supported by the weight-rounding statistics")

    def out_size(self, h: int, w: int) -> tuple[int, int]:
        """Output (height, width) of the Conv for an (h, w) input."""
        (kh, kw), (sy, sx), (dy, dx) = self.kernel, self.strides, self.dilations
        pt, pl, pb, pr = self.pads
        return (h + pt + pb - dy * (kh - 1) - 1) // sy + 1, (w + pl + pr - dx * (kw - 1) - 1) // sx + 1

    def at(self, x: np.ndarray, oy: np.ndarray, ox: np.ndarray) -> np.ndarray:
        """(K, n) float32 input patches of ``x`` (1, C, H, W) for the output positions (oy, ox),
        rows in the weight's (Cin, kh, kw) order."""
        (kh, kw), (sy, sx), (dy, dx) = self.kernel, self.strides, self.dilations
        pt, pl, pb, pr = self.pads
        a = np.pad(x[0], ((0, 0), (pt, pb), (pl, pr)))
        cols = np.stack([a[:, oy * sy + i * dy, ox * sx + j * dx] for i in range(kh) for j in range(kw)], axis=1)
        return cols.reshape(-1, len(oy)).astype(np.float32, copy=False)

    def sample(self, x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """(K, n) patches of ``x`` at ``n`` output positions drawn uniformly (with replacement)."""
        oh, ow = self.out_size(x.shape[2], x.shape[3])
        return self.at(x, rng.integers(0, oh, n), rng.integers(0, ow, n))


def _groups(sizes: dict[str, int], max_bytes: int) -> list[list[str]]:
    groups: list[list[str]] = [[]]
    used = 0
    for name, k in sizes.items():
        b = 4 * k * k
        if groups[-1] and used + b > max_bytes:
            groups.append([])
            used = 0
        groups[-1].append(name)
        used += b
    return groups


def conv_second_moments(model: onnx.ModelProto, source: CalibrationSource, convs: Sequence[str], *,
                        images: int = DEFAULT_IMAGES, pixels: int = DEFAULT_PIXELS, seed: int = 0,
                        max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, np.ndarray]:
    """``{conv: H}`` with H (K, K) float32 = mean of ``p p^T`` over input patches ``p`` of the Conv
    nodes ``convs`` (initializer weights, group 1) of the fp32 ``model``, from the first ``images``
    samples of ``source`` (``pixels`` positions each). Raises BuildError (ORT failure, a Conv that
    does not qualify)."""
    model = infer_shapes(model)
    inits = {t.name: t for t in model.graph.initializer}
    nodes = {n.name: n for n in model.graph.node if n.op_type == "Conv"}
    patches: dict[str, _ConvPatches] = {}
    sizes: dict[str, int] = {}
    for name in convs:
        node = nodes.get(name)
        if node is None or node.input[1] not in inits:
            raise BuildError(f"Conv {name!r}: not found or its weight is not an initializer")
        dims = list(inits[node.input[1]].dims)
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        if len(dims) != 4 or group != 1:
            raise BuildError(f"Conv {name!r}: weight-rounding statistics need a 2-D Conv with group 1")
        patches[name] = _ConvPatches(node, (dims[2], dims[3]))
        sizes[name] = dims[1] * dims[2] * dims[3]
    n = min(images, len(source))
    first = CallableSource(lambda: islice(iter(source), n), n)
    out: dict[str, np.ndarray] = {}
    for group in _groups(sizes, max_bytes):
        out.update(_one_pass(model, first, {c: nodes[c].input[0] for c in group}, patches, sizes, pixels, seed))
    return out


def _one_pass(model: onnx.ModelProto, source: CalibrationSource, inputs: dict[str, str],
              patches: dict[str, _ConvPatches], sizes: dict[str, int], pixels: int,
              seed: int) -> dict[str, np.ndarray]:
    readers: dict[str, list[str]] = {}
    for conv, tensor in inputs.items():
        readers.setdefault(tensor, []).append(conv)
    acc = {c: np.zeros((sizes[c], sizes[c]), np.float32) for c in inputs}
    rngs = {c: np.random.default_rng([seed, i]) for i, c in enumerate(inputs)}

    def visit(tensor: str, arr: np.ndarray) -> None:
        for conv in readers.get(tensor, []):
            p = patches[conv].sample(arr, pixels, rngs[conv])
            acc[conv] += (p @ p.T) / pixels

    names = list(readers)
    chain = open_chain(model, names)
    seen = stream_chain(chain, names, source, visit)
    if seen == 0:
        raise BuildError("weight-rounding statistics: the calibration source yielded no image")
    return {c: a / seen for c, a in acc.items()}


def channel_ranges(model: onnx.ModelProto, source: CalibrationSource,
                   tensors: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{tensor: (min, max)}`` per channel (axis 1) of each of ``tensors`` over every sample of
    ``source`` (one pass through the calibration chain). Raises BuildError (ORT failure)."""
    lo: dict[str, np.ndarray] = {}
    hi: dict[str, np.ndarray] = {}

    def visit(name: str, arr: np.ndarray) -> None:
        flat = arr.reshape(arr.shape[0], arr.shape[1], -1)
        a, b = flat.min(axis=(0, 2)), flat.max(axis=(0, 2))
        lo[name] = np.minimum(lo[name], a) if name in lo else a.astype(np.float64)
        hi[name] = np.maximum(hi[name], b) if name in hi else b.astype(np.float64)

    names = list(dict.fromkeys(tensors))
    chain = open_chain(infer_shapes(model), names)
    if stream_chain(chain, names, source, visit) == 0:
        raise BuildError("channel ranges: the calibration source yielded no image")
    return {t: (lo[t], hi[t]) for t in names}
