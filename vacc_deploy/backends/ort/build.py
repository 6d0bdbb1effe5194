"""The ONNX build stage (ONNX Runtime, and every backend that runs the same files): fp16
conversion, or int8 QDQ from calibration ranges, in ONNX Runtime's own int8 arithmetic or the VACC
card's, emulated. Torch-free.

It takes the earlier stages' artifacts (the fp32 export, the calibration ranges) and never runs
an earlier stage. A build folder ``<workdir>/<row>/build/<precision>[-<method>]-<key>/`` holds
``model.onnx``, ``ranges.json`` (int8) and ``manifest.json`` (input hashes, settings, tool
versions, timings). It appears whole or not at all (an interrupted build leaves nothing; a rerun
completes it) and is reused while its inputs are unchanged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from vacc_deploy import artifacts, machine
from vacc_deploy.artifacts.guard import file_records, reusable, stage_lock
from vacc_deploy.backends.base import BuildInputs, BuiltModel
from vacc_deploy.backends.ort.layers import float_activations, float_layers_of
from vacc_deploy.backends.ort import NAME, NUMERICS, NUMERICS_KEY, VACC_NUMERICS, WEIGHT_BITS_KEY, prepare
from vacc_deploy.backends.ort.options import BuildOptions, resolve_reduce_range
from vacc_deploy.calibration.dataset import CalibSet, CalibSource
from vacc_deploy.calibration.ranges import Ranges
from vacc_deploy.spec import ModelSpec
from vacc_deploy.errors import UsageError
from vacc_deploy.types import INT8_OPS, PRECISIONS

BUILD_FORMAT = 6
VACC_FORMAT = 4  # bump when the vacc numerics emulation changes (2: numerics in the model's metadata;
#                 3: partition, multiple references, 99.999 %; 4: TVM's KL threshold)
FP16_FORMAT = 2  # bump when the fp16 conversion changes (2: duplicate Casts dropped, nodes sorted)


@dataclass
class BuildResult:
    """A built ONNX file: its precision, method, path, folder (None for fp32, the export itself),
    manifest, whether it was reused, and (int8) whose arithmetic it computes."""

    precision: str
    quant: str | None
    model_path: Path
    folder: Path | None
    manifest: dict[str, Any] = field(default_factory=dict)
    cached: bool = False
    numerics: str | None = None


def _check(opts: BuildOptions, ranges: Ranges | None, calib: CalibSet | None) -> None:
    if opts.precision not in PRECISIONS:
        raise UsageError(f"'{opts.precision}': expected one of {', '.join(PRECISIONS)}", option="precision")
    if opts.numerics not in NUMERICS:
        raise UsageError(f"'{opts.numerics}': expected one of {', '.join(NUMERICS)}", option="numerics")
    if opts.precision != "int8":
        return
    if ranges is None or opts.quant is None:
        raise UsageError("an int8 build needs calibration images (none given)", option="calib_images")
    if ranges.method != opts.calibration[0]:
        raise UsageError(f"ranges of method {ranges.method} given for an int8 build of method {opts.calibration[0]}",
                         option="quant")
    if opts.int8_ops not in INT8_OPS:
        raise UsageError(f"'{opts.int8_ops}': expected one of {', '.join(INT8_OPS)}", option="int8_ops")
    if opts.emulates_vacc and opts.activation_bits != 8:
        raise UsageError("vacc numerics quantize activations to 8 bits only", option="activation_bits")
    prepare.check_options(opts)
    if opts.rounding == "gptq" and calib is None:
        raise UsageError("GPTQ weight rounding needs the calibration set (none given)", option="calib_images")


def _build_key(model_sha: str, opts: BuildOptions, ranges: Ranges | None, reduce_range: bool) -> str:
    return artifacts.stage_key({
        "format": BUILD_FORMAT, "model": model_sha, "precision": opts.precision, "quant": opts.quant,
        **({"fp16_format": FP16_FORMAT} if opts.precision == "fp16" else {}),
        "per_channel": opts.per_channel, "skip": list(opts.skip_layers), "edges": opts.float_edges,
        "percentile": opts.calibration[1], "int8_ops": opts.int8_ops,
        "reduce_range": reduce_range, "calib": ranges.calib_sha256 if ranges else None,
        **({"activation_bits": opts.activation_bits} if opts.activation_bits != 8 else {}),
        **(prepare.settings(opts) if opts.precision == "int8" else {}),
        "versions": machine.tool_versions(),
        **({"numerics": opts.numerics, "weight_scale": opts.weight_scale, "vacc_format": VACC_FORMAT}
           if opts.emulates_vacc else {}),
    })


def build_onnxruntime(model_path: Path, opts: BuildOptions, *, row: str, ranges: Ranges | None = None,
                      calib: tuple[CalibSet, ModelSpec] | None = None, workdir: Path | None = None,
                      force: bool = False) -> BuildResult:
    """Build ``opts.precision`` of the fp32 ONNX ``model_path`` (cached).

    fp32 returns the input model itself. fp16 keeps fp32 inputs/outputs. int8 is QDQ with uint8
    activations and int8 weights (``opts.numerics`` onnxruntime) or the emulation of the VACC card's
    int8 arithmetic (vacc), from ``ranges`` (the calibration stage's, of method ``opts.quant``);
    ``calib`` (the calibration set and the row's spec) is read only for ``weight_rounding`` gptq,
    whose statistics come from its images (the build key holds the set through ``ranges``).
    ``model_path`` may be the equalize stage's rewrite of the export. Raises UsageError / BuildError. A cached build is verified against its manifest (file sizes,
    sha256) and rebuilt with a warning when damaged; ``force`` rebuilds it.
    """
    _check(opts, ranges, calib[0] if calib else None)
    if opts.precision == "fp32":
        return BuildResult("fp32", None, Path(model_path), None)
    int8 = opts.precision == "int8"
    model_sha = artifacts.file_digest(model_path)
    reduce_range = resolve_reduce_range(opts.reduce_range) if int8 and not opts.emulates_vacc else False
    quant = opts.quant if int8 else None
    key = _build_key(model_sha, opts, ranges if int8 else None, reduce_range)
    tag = f"int8-{'vacc-' if opts.emulates_vacc else ''}{quant}" if int8 else "fp16"
    folder = artifacts.row_workdir(row, workdir) / "build" / f"{tag}-{key}"
    with stage_lock(folder):  # a concurrent identical build finishes first; this one reuses it
        cached = reusable(folder, force)
        if cached is not None:
            return BuildResult(opts.precision, quant, folder / "model.onnx", folder, cached, cached=True,
                               numerics=opts.numerics if int8 else None)
        return _build_into(folder, key, model_path, model_sha, (ranges, calib), opts, reduce_range, row)


def _build_into(folder: Path, key: str, model_path: Path, model_sha: str,
                data: tuple[Ranges | None, tuple[CalibSet, ModelSpec] | None], opts: BuildOptions,
                reduce_range: bool, row: str) -> BuildResult:
    """Build into ``folder`` (staged: it appears whole or not at all); the caller holds its lock."""
    int8 = opts.precision == "int8"
    ranges, calib = data
    t0 = time.perf_counter()
    with artifacts.staged_dir(folder) as tmp:
        if int8:
            assert ranges is not None
            extra = _int8_into(tmp, model_path, ranges, calib, opts, reduce_range)
        else:
            extra = _fp16_into(tmp, model_path)
        manifest = {"row": row, "precision": opts.precision, "quant": opts.quant if int8 else None,
                    "backend": NAME, "input_model": str(model_path), "input_model_sha256": model_sha,
                    "settings": _settings(opts, reduce_range), "versions": machine.tool_versions(),
                    "key": key, **extra}
        manifest.setdefault("timings", {})["total_s"] = time.perf_counter() - t0
        manifest["files"] = file_records(tmp)
        artifacts.atomic_write_json(tmp / "manifest.json", manifest)
    return BuildResult(opts.precision, manifest["quant"], folder / "model.onnx", folder, manifest,
                       numerics=opts.numerics if int8 else None)


def _fp16_into(tmp: Path, model_path: Path) -> dict[str, Any]:
    from vacc_deploy.backends.ort.qdq import convert_fp16

    t0 = time.perf_counter()
    convert_fp16(model_path, tmp / "model.onnx")
    return {"timings": {"convert_s": time.perf_counter() - t0}}


def _int8_into(tmp: Path, model_path: Path, ranges: Ranges, calib: tuple[CalibSet, ModelSpec] | None,
               opts: BuildOptions, reduce_range: bool) -> dict[str, Any]:
    from vacc_deploy.backends.ort.qdq import quantize_int8
    from vacc_deploy.calibration.collect import INT8_OP_SETS

    graph = onnx.load(str(model_path), load_external_data=False)
    names, indices = float_layers_of(graph, opts)
    t0 = time.perf_counter()
    extra: dict[str, Any] = {"equalize": prepare.equalize_info(model_path)} if opts.equalize else {}
    if opts.emulates_vacc:
        from vacc_deploy.backends.ort.vacc_numerics import quantize_vacc

        extra["vacc_numerics"] = quantize_vacc(model_path, tmp / "model.onnx", ranges.ranges,
                                               weight_scale=opts.weight_scale, per_channel=opts.per_channel,
                                               float_convs=names)
    else:
        source = model_path
        if opts.rounding == "gptq":
            assert calib is not None
            source = tmp / "rounded.onnx"
            extra["weight_rounding"] = prepare.gptq_rounded_model(
                model_path, source, CalibSource(*calib), prepare.int8_convs(graph, names),
                per_channel=opts.per_channel, weight_bits=7 if reduce_range else 8)
        quantize_int8(source, tmp / "model.onnx", ranges.ranges, per_channel=opts.per_channel,
                      nodes_to_exclude=names + float_activations(graph, names), reduce_range=reduce_range,
                      op_types=INT8_OP_SETS[opts.int8_ops], activation_bits=opts.activation_bits)
        if source != model_path:
            source.unlink()
    _tag(tmp / "model.onnx", 7 if reduce_range else 8, opts.numerics)
    artifacts.atomic_write_json(tmp / "ranges.json", {k: list(v) for k, v in ranges.ranges.items()})
    return {"calibration": dict(ranges.info), "float_layers": names, "float_layer_indices": indices, **extra,
            "timings": {"calibration_s": ranges.info["seconds"], "quantize_s": time.perf_counter() - t0}}


def _tag(path: Path, bits: int, numerics: str) -> None:
    """Record the int8 weight width (:data:`WEIGHT_BITS_KEY`) and numerics (:data:`NUMERICS_KEY`)
    in the model's metadata: sessions use ONNX Runtime's exact int8 kernels only for 8-bit weights
    of ONNX Runtime's own scheme (7-bit weights cannot overflow the fast kernels' int16 sums; the
    vacc emulation's convolutions run in float on dequantized int8 values)."""
    model = onnx.load(str(path))
    model.metadata_props.add(key=WEIGHT_BITS_KEY, value=str(bits))
    model.metadata_props.add(key=NUMERICS_KEY, value=numerics)
    onnx.save(model, str(path))


def _settings(opts: BuildOptions, reduce_range: bool) -> dict[str, Any]:
    """The settings a build's manifest and report list: the int8 options for int8 only."""
    if opts.precision != "int8":
        return {"keep_io_types": True}  # fp16 weights and compute, fp32 inputs and outputs
    return {"per_channel": opts.per_channel, "skip_layers": list(opts.skip_layers), "float_edges": opts.float_edges,
            "percentile": opts.calibration[1], "reduce_range": reduce_range, "int8_ops": opts.int8_ops,
            **({"activation_bits": opts.activation_bits} if opts.activation_bits != 8 else {}),
            **prepare.settings(opts),
            **({"numerics": VACC_NUMERICS, "weight_scale": opts.weight_scale} if opts.emulates_vacc else {})}


def build_onnx(inputs: BuildInputs, backend: str) -> BuiltModel:
    """The ONNX build of ``inputs`` for ``backend`` (one that runs ONNX files): see
    :func:`build_onnxruntime`. Raises UsageError without the fp32 export."""
    exported = inputs.exported
    if exported is None:
        raise UsageError(f"row '{inputs.config.name}': an ONNX build needs the fp32 export")
    opts = inputs.options
    calib = (inputs.calib, exported.spec) if inputs.calib is not None else None
    b = build_onnxruntime(exported.onnx_path, opts, row=inputs.config.name, ranges=inputs.ranges, calib=calib,
                          workdir=inputs.workdir, force=inputs.force)
    return BuiltModel(row=inputs.config.name, spec=exported.spec, input_shape=tuple(exported.input_shape),
                      precision=b.precision, quant=b.quant, numerics=b.numerics, label=exported.weights,
                      onnx_path=b.model_path, config=inputs.config, backend=backend, folder=b.folder,
                      manifest=b.manifest, cached=b.cached)
