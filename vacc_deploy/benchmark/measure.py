"""Benchmark measurements: latency statistics of a session, model FLOPs, end-to-end image time.
Torch-free (the torch backend's session imports torch itself, only when it is measured).

Units: times in milliseconds, throughput in images/s and output megapixels/s (10^6 output pixels),
memory in MB (2^20 bytes), FLOPs as 2 × multiply-accumulates.

Peak memory: the peak resident set size (:func:`peak_rss_mb`) is that of the whole process and never
decreases, so one process measuring several configurations would report the largest one for all that
follow. :func:`vacc_deploy.benchmark.worker.run_job` therefore measures each
backend/precision in a fresh Python process; its ``peak_rss_mb`` covers the interpreter, numpy, the
runtime library, the loaded model, its arena and the measurement loop (not the build, which the parent
does beforehand).
"""

from __future__ import annotations

import math
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from vacc_deploy.backends import Session
from vacc_deploy.errors import BuildError, UsageError

#: ONNX ops whose multiply-accumulates are counted by :func:`model_flops`.
FLOP_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm", "QLinearConv", "ConvInteger", "QLinearMatMul",
            "MatMulInteger")


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (process-wide and monotonic).

    On Linux this is ``VmHWM`` of ``/proc/self/status``: the high-water mark of this process's own
    address space. ``getrusage(RUSAGE_SELF).ru_maxrss`` is not used there because the kernel carries
    the pre-``exec`` peak over into it, so a worker started by a big parent would report the parent's
    peak. Elsewhere ``ru_maxrss`` (KiB on Linux/BSD, bytes on macOS).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def latency_stats(times_ms: list[float]) -> dict[str, Any]:
    """p50/p90/mean/min/max/std of latencies (ms) and their noise.

    ``noise.rel_mad`` is the median absolute deviation from the median divided by the median, and
    ``noise.rel_iqr`` the inter-quartile range divided by the median. Two runs of the same
    configuration agree when their p50 differ by less than about 3 × the larger ``rel_mad``.
    """
    t = np.asarray(times_ms, dtype=np.float64)
    if t.size == 0:
        raise UsageError("no timed iterations (at least 1 is needed)", option="iters")
    p25, p50, p75, p90 = np.percentile(t, [25, 50, 75, 90])
    return {
        "latency_ms": {"p50": float(p50), "p90": float(p90), "mean": float(t.mean()), "min": float(t.min()),
                       "max": float(t.max()), "std": float(t.std())},
        "noise": {"rel_mad": float(np.median(np.abs(t - p50)) / p50) if p50 > 0 else 0.0,
                  "rel_iqr": float((p75 - p25) / p50) if p50 > 0 else 0.0, "n": int(t.size)},
    }


def cpu_probe_ms(n: int = 384, repeats: int = 5) -> float:
    """Median time (ms) of a fixed float32 ``n``×``n`` matrix product: a yardstick of how fast the
    machine is *right now*. Taken before and after a measurement, it shows load drift on a shared
    machine, which the within-run ``noise`` cannot: configurations measured minutes apart are only
    comparable when their probes agree. It uses numpy's BLAS threads, so it also shows a core
    taken by another process: on the 2-core development box it reads ~1 ms idle and ~24 ms (one
    scheduler time slice) when a thread waits for a busy core, the same straggler wait that slows
    a multi-threaded model run."""
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    return float(np.median([_timed(lambda: a @ a)[0] for _ in range(repeats)]))


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return (time.perf_counter() - t0) * 1e3, out


def measure(session: Session, x: np.ndarray, iters: int = 20, warmup: int = 3) -> dict[str, Any]:
    """Time ``session.run(x)``: 1 first call + ``warmup`` untimed calls + ``iters`` timed calls.

    Contract: call it on a freshly opened session, so that ``first_run_ms`` is the time of the very
    first ``run`` after session creation (lazy initialisation, allocations, kernel selection). The
    first run and warm-up calls are excluded from the latency statistics.

    Returns a dict with ``latency_ms`` {p50, p90, mean, min, max, std}, ``noise`` (see
    :func:`latency_stats`), ``first_run_ms``, ``iters``, ``warmup``, ``output_shape``,
    ``images_per_s`` (batch size / p50), ``megapixels_per_s`` (output pixels per batch / p50 / 10^6)
    and ``peak_rss_mb`` (this process's peak so far, see the module docstring).
    """
    if iters < 1 or warmup < 0:
        raise UsageError(f"timed runs must be >= 1 and warm-up runs >= 0 (got {iters}, {warmup})", option="iters")
    first_ms, out = _timed(lambda: session.run(x))
    for _ in range(warmup):
        session.run(x)
    times = [_timed(lambda: session.run(x))[0] for _ in range(iters)]
    stats = latency_stats(times)
    p50_s = stats["latency_ms"]["p50"] / 1e3
    n, out_pixels = out.shape[0], int(np.prod(out.shape[2:])) * out.shape[0]
    stats.update(first_run_ms=first_ms, iters=iters, warmup=warmup, output_shape=list(out.shape),
                 images_per_s=n / p50_s, megapixels_per_s=out_pixels / p50_s / 1e6, peak_rss_mb=peak_rss_mb())
    return stats


def _shape_table(model) -> dict[str, list[int | None]]:
    """Tensor name → dims (None where unknown) after ONNX shape inference."""
    g = model.graph
    shapes: dict[str, list[int | None]] = {i.name: list(i.dims) for i in g.initializer}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    return shapes


def _prod(dims: list[int | None], what: str) -> int:
    if not dims or any(d is None for d in dims):
        raise BuildError(f"model_flops: shape of {what} unknown after ONNX shape inference: {dims}")
    return math.prod(dims)  # type: ignore[arg-type]


def _node_macs(node, shapes: dict[str, list[int | None]]) -> int:
    """Multiply-accumulates of one Conv/ConvTranspose/MatMul/Gemm-like node."""
    op, get = node.op_type, (lambda name: shapes.get(name, []))
    if op in ("Conv", "ConvInteger", "QLinearConv"):
        w = get(node.input[3] if op == "QLinearConv" else node.input[1])  # (Cout, Cin/g, *k)
        return _prod(get(node.output[0]), node.output[0]) * _prod(w[1:], f"weight of {node.name}")
    if op == "ConvTranspose":
        w = get(node.input[1])  # (Cin, Cout/g, *k): each input pixel feeds Cout/g * k outputs
        return _prod(get(node.input[0]), node.input[0]) * _prod(w[1:], f"weight of {node.name}")
    a = get(node.input[0])
    if op == "Gemm":
        trans_a = any(at.name == "transA" and at.i for at in node.attribute)
        k = a[0] if trans_a else a[-1]
    else:  # MatMul, MatMulInteger, QLinearMatMul: (..., M, K) x (..., K, N)
        k = a[-1] if a else None
    return _prod(get(node.output[0]), node.output[0]) * _prod([k], f"K of {node.name}")


def model_flops(onnx_path: Path) -> int:
    """FLOPs of one inference of a fixed-shape ONNX model: 2 × the multiply-accumulates of its
    Conv, ConvTranspose, MatMul and Gemm nodes (and their quantized forms), from the shapes ONNX shape
    inference gives. Element-wise ops, activations, pixel shuffle and resizes are not counted.
    Raises BuildError when a counted node's shape is unknown.
    """
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(onnx_path)))
    shapes = _shape_table(model)
    return 2 * sum(_node_macs(n, shapes) for n in model.graph.node if n.op_type in FLOP_OPS)


def count_model_calls(image_hw: tuple[int, int], spec, input_shape: tuple[int, ...] | None,
                      overlap: int) -> tuple[int, int]:
    """(tiles, model calls) the :class:`~vacc_deploy.evaluation.upscaler.Upscaler` makes for an LR image of
    ``image_hw``: (1, 1) for whole-image backends (``input_shape`` None)."""
    from vacc_deploy.imaging.tiling import tile_origins

    if input_shape is None:
        return 1, 1
    m = spec.size_multiple
    h, w = (-(-image_hw[0] // m) * m, -(-image_hw[1] // m) * m)
    th, tw = input_shape[2], input_shape[3]
    h, w = max(h, th), max(w, tw)
    tiles = len(tile_origins(h, th, min(overlap, th // 2))) * len(tile_origins(w, tw, min(overlap, tw // 2)))
    return tiles, -(-tiles // input_shape[0])


def end_to_end(upscaler, images: Sequence[np.ndarray], model_p50_ms: float, repeats: int = 3) -> dict[str, Any]:
    """Time whole LR images (H, W, 3 RGB arrays) through ``upscaler`` (pre-processing, padding,
    tiling, blending, post-processing): per image 1 untimed call, then the median of ``repeats``
    timed calls (ms); the figures are summed over the images.

    ``megapixels_per_s`` is output pixels (10^6) over the summed time; ``tiling_overhead`` =
    end-to-end / (model calls × ``model_p50_ms``): 1.0 means the model's time alone; None for
    whole-image backends (their model time at the image size was not measured). ``lr_hw`` is
    the image's size when there is one image.
    """
    if not images:
        raise UsageError("end-to-end timing needs at least one image")
    session, scale = upscaler.session, upscaler.spec.scale
    ms = tiles = calls = out_px = 0
    for rgb in images:
        upscaler(rgb)
        ms += float(np.median([_timed(lambda: upscaler(rgb))[0] for _ in range(max(1, repeats))]))
        t, c = count_model_calls(rgb.shape[:2], upscaler.spec, session.input_shape, upscaler.overlap)
        tiles, calls, out_px = tiles + t, calls + c, out_px + rgb.shape[0] * rgb.shape[1] * scale * scale
    whole = session.input_shape is None
    out = {"ms": ms, "images": len(images), "tiles": tiles, "model_calls": calls, "repeats": max(1, repeats),
           "megapixels_per_s": out_px / 1e6 / (ms / 1e3),
           "tiling_overhead": None if whole else ms / (calls * model_p50_ms)}
    if len(images) == 1:
        out["lr_hw"] = list(images[0].shape[:2])
    return out
