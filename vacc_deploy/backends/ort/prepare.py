"""Optional fp32 rewrites an int8 build applies before ONNX Runtime's QDQ quantizer (ONNX Runtime
numerics only). Torch-free.

* ``equalize``: cross-layer channel equalization (:mod:`.equalize`), scales from the calibration
  images' per-channel ranges (one extra forward pass); the equalized fp32 model is cached under
  ``<row dir>/equalized/`` so that its calibration ranges are cached too (they are keyed by model).
  The pipeline's equalize stage runs it between the calibration set and the ranges
  (:func:`vacc_deploy.pipeline.stages.equalize_stage`).
* ``weight_rounding="gptq"``: error-compensating rounding of the int8 Convs' weights
  (:mod:`.weight_rounding`) from their input second moments over the first calibration images
  (:mod:`.conv_stats`); the rounded fp32 model is what the quantizer then reads, and it writes
  exactly these levels.

Both leave the network's fp32 function unchanged (equalization up to float rounding) and change
only how int8 rounds it. Their cost and effect are measured in docs/accuracy.md ("Real-ESRGAN rows").
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import onnx

from vacc_deploy import artifacts
from vacc_deploy.backends.ort.conv_stats import channel_ranges, conv_second_moments
from vacc_deploy.backends.ort.equalize import apply_scales, channel_spaces, median_scales
from vacc_deploy.backends.ort.qdq import load_model, save_checked, untie_initializers
from vacc_deploy.backends.ort.weight_rounding import round_conv_weights
from vacc_deploy.backends.ort.options import BuildOptions
from vacc_deploy.calibration.collect import CalibrationSource
from vacc_deploy.errors import UsageError
from vacc_deploy.types import DEFAULT_EQUALIZE, DEFAULT_WEIGHT_ROUNDING, WEIGHT_ROUNDINGS

EQUALIZE_FORMAT = 1  # bump when the equalization rule changes


def check_options(opts: BuildOptions) -> None:
    """UsageError (naming the option) for an unknown ``weight_rounding`` or a rewrite asked of the
    vacc numerics (whose emulation must compute what the card computes from the export)."""
    if opts.rounding not in WEIGHT_ROUNDINGS:
        raise UsageError(f"'{opts.weight_rounding}': expected one of {', '.join(WEIGHT_ROUNDINGS)}",
                         option="weight_rounding")
    if opts.emulates_vacc and opts.equalize:
        raise UsageError("equalization applies to the onnxruntime numerics only", option="equalize")
    if opts.emulates_vacc and opts.rounding != DEFAULT_WEIGHT_ROUNDING:
        raise UsageError("weight rounding applies to the onnxruntime numerics only", option="weight_rounding")


def settings(opts: BuildOptions) -> dict[str, Any]:
    """The rewrites that differ from the defaults (for build keys and manifests; empty by default,
    so builds without them keep their keys)."""
    return {**({"equalize": True} if bool(opts.equalize) != DEFAULT_EQUALIZE else {}),
            **({"weight_rounding": opts.rounding} if opts.rounding != DEFAULT_WEIGHT_ROUNDING else {})}


def equalized_model(model_path: Path, calib_sha: str, source: CalibrationSource,
                    row_dir: Path) -> tuple[Path, dict[str, Any]]:
    """(path, info) of the equalized copy of the fp32 ``model_path`` (cached by model, calibration
    set and rule; written atomically). ``info``: spaces, channels rescaled, scale range, seconds.
    Raises BuildError (ORT failure, unreadable model)."""
    model_sha = artifacts.file_digest(model_path)
    key = artifacts.stage_key({"format": EQUALIZE_FORMAT, "model": model_sha, "calib": calib_sha, "rule": "median"})
    path = row_dir / "equalized" / f"model-{key}.onnx"
    meta = path.with_suffix(".json")
    if path.is_file() and meta.is_file():
        try:
            return path, artifacts.read_json(meta)
        except (ValueError, OSError):
            pass
    t0 = time.perf_counter()
    model = load_model(model_path)
    untie_initializers(model)
    spaces = channel_spaces(model)
    tensors = [t for s in spaces.values() for t, _ in s.tensors]
    alphas = median_scales(spaces, channel_ranges(model, source, tensors))
    apply_scales(model, spaces, alphas)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checked(model, path, "channel equalization")
    scales = [float(v) for a in alphas.values() for v in (a.min(), a.max())]
    info = {"rule": "median", "spaces": len(alphas), "channels": int(sum(len(a) for a in alphas.values())),
            "scale_min": min(scales, default=1.0), "scale_max": max(scales, default=1.0),
            "seconds": time.perf_counter() - t0}
    artifacts.atomic_write_json(meta, info)
    return path, info


def equalize_info(model_path: Path) -> dict[str, Any]:
    """The info :func:`equalized_model` recorded for ``model_path``. Raises UsageError (option
    ``equalize``) when ``model_path`` is not an equalized model (the equalize stage did not run)."""
    meta = Path(model_path).with_suffix(".json")
    if Path(model_path).parent.name != "equalized" or not meta.is_file():
        raise UsageError(f"{model_path} is not an equalized model: the equalize stage must run first",
                         option="equalize")
    try:
        return artifacts.read_json(meta)
    except (ValueError, OSError) as exc:
        raise UsageError(f"{meta}: unreadable equalization record ({exc})", option="equalize") from exc


def gptq_rounded_model(model_path: Path, out_path: Path, source: CalibrationSource, int8_convs: list[str], *,
                       per_channel: bool, weight_bits: int) -> dict[str, Any]:
    """Write to ``out_path`` the fp32 ``model_path`` with the weights of ``int8_convs`` GPTQ-rounded
    onto ONNX Runtime's grid (``weight_bits`` 8, or 7 for reduced-range weights). Returns info:
    Convs rounded, the median ratio of estimated output error energy to nearest rounding, seconds."""
    t0 = time.perf_counter()
    model = load_model(model_path)
    untie_initializers(model)
    hessians = conv_second_moments(model, source, int8_convs)
    t_stats = time.perf_counter() - t0
    gains = round_conv_weights(model, hessians, int8_convs, per_channel=per_channel,
                               qmax=127 if weight_bits == 8 else 64)
    del hessians
    save_checked(model, out_path, "GPTQ weight rounding")
    ratios = sorted(gains.values())
    return {"convs": len(gains), "median_error_ratio": ratios[len(ratios) // 2] if ratios else None,
            "statistics_s": t_stats, "seconds": time.perf_counter() - t0}


def int8_convs(model: onnx.ModelProto, float_convs: list[str]) -> list[str]:
    """Conv nodes an int8 build quantizes (initializer weights, group 1), in graph order."""
    inits = {t.name for t in model.graph.initializer}
    skip = set(float_convs)
    return [n.name for n in model.graph.node if n.op_type == "Conv" and n.name not in skip
            and n.input[1] in inits and all(a.i == 1 for a in n.attribute if a.name == "group")]
