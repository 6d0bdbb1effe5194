"""Build stage on ONNX Runtime: fp16 conversion, or int8 QDQ from streamed calibration ranges.
Torch-free.

A build folder ``<workdir>/<row>/build/<precision>[-<method>]-<key>/`` holds ``model.onnx``,
``ranges.json`` (int8) and ``manifest.json`` (input hashes, settings, tool versions, timings). It
appears whole or not at all (an interrupted build leaves nothing; a rerun completes it) and is
reused while its inputs are unchanged. Calibration ranges are cached on their own under
``<workdir>/<row>/ranges/`` (keyed by model, calibration set and method), so builds that differ only
in per-channel or skipped layers reuse them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import onnx

from vacc_deploy import artifacts
from vacc_deploy.calibration.dataset import CalibSet, CalibSource
from vacc_deploy.errors import UsageError
from vacc_deploy.backends.vacc.emulation import (DEFAULT_WEIGHT_SCALE, VACC_PERCENTILE, WeightScale,
                                                 calibration_method, tvm_conv_order)
from vacc_deploy.spec import ModelSpec
from vacc_deploy.artifacts.guard import file_records, reusable, stage_lock

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")
#: Whose int8 arithmetic an int8 build computes: ONNX Runtime's QDQ scheme (uint8 asymmetric
#: activations, float element-wise ops), or the VACC card's as emulated from TVM's quantizer
#: (:mod:`vacc_deploy.backends.vacc.emulation`; docs/vacc.md).
Numerics = Literal["onnxruntime", "vacc"]
NUMERICS: tuple[str, ...] = get_args(Numerics)
BUILD_FORMAT = 6
RANGES_FORMAT = 4  # bump when a calibration method's rule changes (3: constant tensors; 4: one pass)
VACC_FORMAT = 3  # bump when the vacc numerics emulation changes (2: partition, multi-ref, 99.999 %; 3: TVM KL)
FP16_FORMAT = 2  # bump when the fp16 conversion changes (2: duplicate Casts dropped, nodes sorted)


@dataclass(frozen=True)
class BuildOptions:
    """How to build: precision; for int8 the calibration method, per-channel weights, layers kept
    in float (Conv node names or 0-based Conv indices), whether the edge convs (those that read the
    image and write the output, see :func:`edge_convs`) stay float, percentile and 7-bit weights
    (``reduce_range``: 7-bit weights; ``auto`` = on for x86-64 CPUs without VNNI. Off by default:
    sessions on such CPUs use ORT's exact u8u8 kernels instead, see
    :func:`vacc_deploy.artifacts.x86_without_vnni`), and which op types are quantized (``int8_ops``,
    a name of :data:`vacc_deploy.calibration.collect.INT8_OP_SETS`). ``target_drop`` (dB) asks the
    pipeline to search the method, per-channel and float layers instead (see
    :mod:`vacc_deploy.pipeline.search`); a build itself never sees it. ``numerics`` picks whose int8
    arithmetic the build computes (:data:`Numerics`); ``weight_scale`` (vacc numerics only, as in the
    vamc YAML) is TVM's weight threshold rule, ``power2`` by default as in TVM's ``qconfig``. The vacc
    numerics keep in float exactly the Conv layers the vamc YAML lists (``skip_layers`` and the edges
    when ``float_edges``), nothing else: ``int8_ops`` and ``reduce_range`` do not apply to it.
    ``activation_bits`` (ONNX Runtime numerics only): 8 (uint8 activations, default) or 16 (uint16
    activations, int8 weights; ORT runs them in float on CPU, so a fidelity build, not a fast one)."""

    precision: str = "fp32"
    quant: str | None = None
    per_channel: bool = True
    skip_layers: tuple[str, ...] = ()
    float_edges: bool = True
    percentile: float = 99.99
    reduce_range: str = "off"
    int8_ops: str = "compute"
    target_drop: float | None = None
    max_float_layers: int | None = None
    numerics: Numerics = "onnxruntime"
    weight_scale: WeightScale = DEFAULT_WEIGHT_SCALE
    activation_bits: int = 8


@dataclass
class BuildResult:
    """A built model: its file, folder, settings and manifest (``numerics`` None unless int8)."""

    precision: str
    quant: str | None
    model_path: Path
    folder: Path | None
    manifest: dict[str, Any] = field(default_factory=dict)
    cached: bool = False
    numerics: str | None = None


def precision_label(precision: str, numerics: str | None) -> str:
    """How reports name a build: ``int8 (onnxruntime)``, ``int8 (vacc, emulated)``, else the precision."""
    if precision != "int8" or numerics is None:
        return precision
    return "int8 (vacc, emulated)" if numerics == "vacc" else f"int8 ({numerics})"


def resolve_reduce_range(choice: str) -> bool:
    """``on``/``off``, or ``auto``: on for x86-64 without VNNI."""
    if choice not in ("auto", "on", "off"):
        raise UsageError(f"--reduce-range {choice}: expected auto, on or off")
    if choice == "auto":
        return artifacts.x86_without_vnni()
    return choice == "on"


def conv_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the Conv nodes in the order TVM's quantizer counts them (index i = vamc
    ``skip_conv_layers`` index i; :func:`~vacc_deploy.backends.vacc.emulation.tvm_conv_order`: graph
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
    return _float_layers_of(onnx.load(str(model_path), load_external_data=False), opts)


def _float_layers_of(model: onnx.ModelProto, opts: BuildOptions) -> tuple[list[str], list[int]]:
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
    """Map ``--skip-layers`` items (Conv node names or 0-based Conv indices) to (names, indices),
    given the model's Conv node names in graph order (:func:`conv_nodes`).

    Raises UsageError naming an unknown layer and listing how to find the names.
    """
    names, indices = [], []
    for item in skips:
        if item.isdigit() and int(item) < len(convs):
            idx = int(item)
        elif item in convs:
            idx = convs.index(item)
        else:
            raise UsageError(f"--skip-layers: no Conv layer '{item}' (use a name of the {len(convs)} Conv "
                             f"nodes, e.g. '{convs[0]}', or an index 0..{len(convs) - 1})")
        names.append(convs[idx])
        indices.append(idx)
    return names, sorted(set(indices))


def calibration_ranges(model_path: Path, model_sha: str, calib: CalibSet, spec: ModelSpec, method: str,
                       percentile: float, row_dir: Path) -> tuple[dict[str, tuple[float, float]], dict[str, Any]]:
    """Activation ranges of ``model_path`` over ``calib`` with ``method`` (cached on disk).

    Returns (ranges, info) where info records the method, parameters, images, seconds, seconds per
    image, segments (ORT sessions each image ran through) and the calibration's peak RSS in MB.
    """
    from vacc_deploy.calibration import METHODS, CalibrationResult, calibrate
    from vacc_deploy.calibration.methods import METHOD_PARAMS

    if method not in METHODS:
        raise UsageError(f"--quant {method}: unknown method (known: {', '.join(METHODS)})")
    params = {"percentile": percentile} if method == "percentile" else dict(METHOD_PARAMS.get(method, {}))
    key = artifacts.stage_key({"format": RANGES_FORMAT, "model": model_sha, "calib": calib.sha256,
                               "method": method, **params})
    path = row_dir / "ranges" / f"{method}-{key}.json"
    if path.is_file():
        try:
            data = artifacts.read_json(path)
            return CalibrationResult.from_dict(data["result"]).ranges, data["info"]
        except (ValueError, KeyError, TypeError):
            log.warning("cached calibration ranges %s are unreadable; recomputing them", path)
    t0 = time.perf_counter()
    result = calibrate(model_path, CalibSource(calib, spec), method, **params)
    info = {"method": method, "params": params, "images": calib.num, "calib_sha256": calib.sha256,
            "calib_folder": str(calib.folder), "seconds": time.perf_counter() - t0,
            "seconds_per_image": result.seconds_per_image, "segments": result.segments,
            "peak_rss_mb": result.peak_rss_mb}
    artifacts.atomic_write_json(path, {"info": info, "result": result.to_dict()})
    return result.ranges, info


def _build_key(model_sha: str, opts: BuildOptions, calib: CalibSet | None, reduce_range: bool) -> str:
    return artifacts.stage_key({
        "format": BUILD_FORMAT, "model": model_sha, "precision": opts.precision, "quant": opts.quant,
        **({"fp16_format": FP16_FORMAT} if opts.precision == "fp16" else {}),
        "per_channel": opts.per_channel, "skip": list(opts.skip_layers), "edges": opts.float_edges,
        "percentile": opts.percentile, "int8_ops": opts.int8_ops,
        "reduce_range": reduce_range, "calib": calib.sha256 if calib else None,
        **({"activation_bits": opts.activation_bits} if opts.activation_bits != 8 else {}),
        "versions": artifacts.tool_versions(),
        **({"numerics": opts.numerics, "weight_scale": opts.weight_scale, "vacc_format": VACC_FORMAT}
           if opts.numerics == "vacc" and opts.precision == "int8" else {}),
    })


def _int8_into(tmp: Path, model_path: Path, model_sha: str, spec: ModelSpec, calib: CalibSet,
               opts: BuildOptions, reduce_range: bool, row_dir: Path) -> dict[str, Any]:
    from vacc_deploy.calibration import INT8_OP_SETS, quantize_int8

    if opts.int8_ops not in INT8_OP_SETS:
        raise UsageError(f"--int8-ops {opts.int8_ops}: expected one of {', '.join(INT8_OP_SETS)}")
    graph = onnx.load(str(model_path), load_external_data=False)
    names, indices = _float_layers_of(graph, opts)
    exclude = names + float_activations(graph, names)
    vacc = opts.numerics == "vacc"  # TVM's own thresholds: its percentile, its KL rule
    method, pct = (calibration_method(opts.quant), VACC_PERCENTILE) if vacc else (opts.quant, opts.percentile)
    ranges, info = calibration_ranges(model_path, model_sha, calib, spec, method, pct, row_dir)
    t0 = time.perf_counter()
    extra: dict[str, Any] = {}
    if opts.numerics == "vacc":
        from vacc_deploy.backends.vacc.emulation import quantize_vacc

        if opts.activation_bits != 8:
            raise UsageError("vacc numerics quantize activations to 8 bits only")
        extra["vacc_numerics"] = quantize_vacc(model_path, tmp / "model.onnx", ranges, weight_scale=opts.weight_scale,
                                               per_channel=opts.per_channel, float_convs=names)
    else:
        quantize_int8(model_path, tmp / "model.onnx", ranges, per_channel=opts.per_channel,
                      nodes_to_exclude=exclude, reduce_range=reduce_range, op_types=INT8_OP_SETS[opts.int8_ops],
                      activation_bits=opts.activation_bits)
    _tag_weight_bits(tmp / "model.onnx", 7 if reduce_range else 8)
    artifacts.atomic_write_json(tmp / "ranges.json", {k: list(v) for k, v in ranges.items()})
    return {"calibration": {**info, "n_skipped_images": calib.manifest.get("n_skipped", 0)},
            "float_layers": names, "float_layer_indices": indices, **extra,
            "timings": {"calibration_s": info["seconds"], "quantize_s": time.perf_counter() - t0}}


def _tag_weight_bits(path: Path, bits: int) -> None:
    """Record the int8 weight width in the model's metadata (``vacc_deploy.int8_weight_bits``):
    sessions use ONNX Runtime's exact int8 kernels only for 8-bit weights (7-bit weights cannot
    overflow the fast kernels' int16 sums)."""
    from vacc_deploy.backends.ort.session import WEIGHT_BITS_KEY

    model = onnx.load(str(path))
    model.metadata_props.add(key=WEIGHT_BITS_KEY, value=str(bits))
    onnx.save(model, str(path))


def build_onnxruntime(model_path: Path, spec: ModelSpec, opts: BuildOptions, *, row: str,
                      calib: CalibSet | None = None, workdir: Path | None = None,
                      force: bool = False) -> BuildResult:
    """Build ``opts.precision`` of the fp32 ONNX ``model_path`` for ONNX Runtime (cached).

    fp32 returns the input model itself. fp16 keeps fp32 inputs/outputs. int8 is QDQ with uint8
    activations and int8 weights (``opts.numerics`` onnxruntime) or the emulation of the VACC card's
    int8 arithmetic (vacc), and needs ``calib``. Raises UsageError / BuildError.
    A cached build is verified against its manifest (file sizes, sha256) and rebuilt with a warning
    when damaged; ``force`` rebuilds it (calibration ranges cached under ``ranges/`` are reused).
    """
    if opts.precision not in PRECISIONS:
        raise UsageError(f"--precision {opts.precision}: expected one of {', '.join(PRECISIONS)}")
    if opts.precision == "fp32":
        return BuildResult("fp32", None, Path(model_path), None)
    if opts.precision == "int8" and (calib is None or opts.quant is None):
        raise UsageError("--precision int8 needs calibration images: pass --calib-images DIR")
    if opts.numerics not in NUMERICS:
        raise UsageError(f"--numerics {opts.numerics}: expected one of {', '.join(NUMERICS)}")
    model_sha = artifacts.file_digest(model_path)
    vacc = opts.numerics == "vacc" and opts.precision == "int8"
    reduce_range = resolve_reduce_range(opts.reduce_range) if opts.precision == "int8" and not vacc else False
    quant = opts.quant if opts.precision == "int8" else None
    numerics = opts.numerics if opts.precision == "int8" else None
    key = _build_key(model_sha, opts, calib if opts.precision == "int8" else None, reduce_range)
    row_dir = artifacts.row_workdir(row, workdir)
    folder = row_dir / "build" / (f"int8-{'vacc-' if vacc else ''}{quant}-{key}" if quant else f"fp16-{key}")
    with stage_lock(folder):  # a concurrent identical build finishes first; this one reuses it
        cached = reusable(folder, force)
        if cached is not None:
            return BuildResult(opts.precision, quant, folder / "model.onnx", folder, cached, cached=True,
                               numerics=numerics)
        return _build_into(folder, key, model_path, model_sha, spec, calib, opts, reduce_range, row)


def _build_into(folder: Path, key: str, model_path: Path, model_sha: str, spec: ModelSpec, calib: CalibSet | None,
                opts: BuildOptions, reduce_range: bool, row: str) -> BuildResult:
    """Build into ``folder`` (staged: it appears whole or not at all); the caller holds its lock."""
    quant = opts.quant if opts.precision == "int8" else None
    numerics = opts.numerics if opts.precision == "int8" else None
    row_dir = folder.parent.parent
    t0 = time.perf_counter()
    with artifacts.staged_dir(folder) as tmp:
        extra = _precision_into(tmp, model_path, model_sha, spec, calib, opts, reduce_range, row_dir)
        manifest = {"row": row, "precision": opts.precision, "quant": quant, "backend": "onnxruntime",
                    "input_model": str(model_path), "input_model_sha256": model_sha,
                    "settings": _settings(opts, reduce_range),
                    "versions": artifacts.tool_versions(), "key": key, **extra}
        manifest.setdefault("timings", {})["total_s"] = time.perf_counter() - t0
        manifest["files"] = file_records(tmp)
        artifacts.atomic_write_json(tmp / "manifest.json", manifest)
    return BuildResult(opts.precision, quant, folder / "model.onnx", folder, manifest, numerics=numerics)


def _settings(opts: BuildOptions, reduce_range: bool) -> dict[str, Any]:
    """The settings a build's manifest and report list: the int8 options for int8 only."""
    if opts.precision != "int8":
        return {"keep_io_types": True}  # fp16 weights and compute, fp32 inputs and outputs
    return {"per_channel": opts.per_channel, "skip_layers": list(opts.skip_layers), "float_edges": opts.float_edges,
            "percentile": VACC_PERCENTILE if opts.numerics == "vacc" else opts.percentile,
            "reduce_range": reduce_range, "int8_ops": opts.int8_ops,
            **({"activation_bits": opts.activation_bits} if opts.activation_bits != 8 else {}),
            **({"numerics": "vacc", "weight_scale": opts.weight_scale} if opts.numerics == "vacc" else {})}


def _precision_into(tmp: Path, model_path: Path, model_sha: str, spec: ModelSpec, calib: CalibSet | None,
                    opts: BuildOptions, reduce_range: bool, row_dir: Path) -> dict[str, Any]:
    if opts.precision == "fp16":
        from vacc_deploy.calibration import convert_fp16

        t0 = time.perf_counter()
        convert_fp16(model_path, tmp / "model.onnx")
        return {"timings": {"convert_s": time.perf_counter() - t0}}
    assert calib is not None
    return _int8_into(tmp, model_path, model_sha, spec, calib, opts, reduce_range, row_dir)
