"""Writers for the two files the Vastai toolchain reads: the ``vamc`` build YAML and the VDSP
pre-processing JSON.

Both follow the vendor's current format as published in the Vastai model zoo
(``Vastai/VastModelZOO``, e.g. ``cv/super_resolution/edsr/build_in/build/official_edsr.yaml`` and
``cv/super_resolution/edsr/build_in/vdsp_params/basicsr-edsr_mx2-vdsp_params.json``); see
``docs/vacc.md`` for the mapping and the points the vendor leaves open.

Layout written by :func:`write_vamc_files` under ``out_dir``::

    vamc_build.yaml        # give to ``vamc compile`` (run with cwd = out_dir)
    vdsp_params.json       # device-side pre-processing for vaststreamx / vamp
    deploy_weights/<name>/ # where vamc puts the compiled model (workspace.path, absolute)

This module is torch-free and imports no vendor package.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import yaml

from vacc_deploy.artifacts import atomic_write_text
from vacc_deploy.backends.vacc import PRECISIONS
from vacc_deploy.config import RowConfig
from vacc_deploy.errors import UsageError
from vacc_deploy.types import CALIB_METHODS, DEFAULT_WEIGHT_SCALE, WEIGHT_SCALES
from vacc_deploy.spec import ModelSpec

#: vamc's ``calibrate_mode`` values: the package's calibration methods, passed by name.
VAMC_QUANT_MODES = CALIB_METHODS
YAML_NAME = "vamc_build.yaml"
VDSP_NAME = "vdsp_params.json"
DEPLOY_DIR = "deploy_weights"
CALIB_SUFFIX = "png"

# Per-family extras merged into ``backend.compile``. The vendor's BasicSR EDSR build file
# (cv/super_resolution/edsr/build_in/build/basicsr_edsr.yaml) sets ``enable_graph_partition: true``
# under ``compile``; no other super-resolution build file in the zoo sets extras (Bicubic++,
# LESRCNN, BSRGAN and official EDSR only set ``data_transport_mode: 1``).
COMPILE_EXTRAS: dict[str, dict[str, Any]] = {
    "edsr_basicsr": {"enable_graph_partition": True},
}


@dataclass(frozen=True)
class VamcFiles:
    """What :func:`write_vamc_files` wrote."""

    name: str
    yaml_path: Path
    vdsp_json: Path
    deploy_dir: Path  # where vamc will put the compiled model: <workspace>/<name>/


def model_name(row: str, precision: str, quant: str, per_channel: bool,
               skip_conv_layers: Sequence[int]) -> str:
    """The vamc model name: ``<row>_<precision>[_<quant>[_pertensor][_skip<i>-<j>]]``."""
    if precision == "fp16":
        return f"{row}_fp16"
    name = f"{row}_int8_{quant}"
    if not per_channel:
        name += "_pertensor"
    if skip_conv_layers:
        name += "_skip" + "-".join(str(i) for i in skip_conv_layers)
    return name


def _check_args(precision: str, quant: str, skip_conv_layers: Sequence[int],
                calib_dir: Path | None, calib_num: int, input_shape: Sequence[int], weight_scale: str) -> None:
    """Raise UsageError on any argument vamc would reject (or silently misread)."""
    if weight_scale not in WEIGHT_SCALES:
        raise UsageError(f"weight_scale '{weight_scale}': expected one of {', '.join(WEIGHT_SCALES)}")
    if precision not in PRECISIONS:
        raise UsageError(f"precision '{precision}': expected one of {', '.join(PRECISIONS)}")
    if quant not in VAMC_QUANT_MODES:
        raise UsageError(f"'{quant}': vamc calibrate_mode must be one of {', '.join(VAMC_QUANT_MODES)}",
                         option="quant")
    if len(input_shape) != 4 or any(int(d) <= 0 for d in input_shape):
        raise UsageError(f"input shape {tuple(input_shape)}: expected (N, C, H, W), all positive")
    if any(not isinstance(i, int) or isinstance(i, bool) or i < 0 for i in skip_conv_layers):
        raise UsageError(f"skip_conv_layers {list(skip_conv_layers)}: expected non-negative integers")
    if precision != "int8":
        return
    if calib_dir is None:
        raise UsageError("int8 build for vamc needs a calibration image folder (calib_dir)")
    if not calib_dir.is_dir():
        raise UsageError(f"calibration folder not found: {calib_dir}")
    if calib_num <= 0:
        raise UsageError(f"calib_num {calib_num}: expected a positive number of images")
    found = len(list(calib_dir.glob(f"*.{CALIB_SUFFIX}")))
    if found < calib_num:
        raise UsageError(f"{calib_dir}: holds {found} .{CALIB_SUFFIX} images, vamc is asked for "
                         f"{calib_num} (get_data_num)")


def process_ops(spec: ModelSpec, height: int, width: int) -> list[dict[str, Any]]:
    """The calibration pre-processing, in the vendor's ``dataset.process_ops`` vocabulary.

    The vendor decodes each image, resizes the *whole* image to the model input size, normalizes
    (``/255`` by default; ``div255: false`` keeps 0-255 as for official EDSR) and makes a CHW tensor.
    The vendor's ``DecodeImage`` yields RGB (every RGB model in the zoo uses it bare). For a BGR
    model (Bicubic++) we ask it to keep OpenCV's BGR order with ``to_rgb: false``.
    """
    decode: dict[str, Any] = {"type": "DecodeImage"}
    if spec.channel_order == "BGR":
        decode["to_rgb"] = False
    return [
        decode,
        {"type": "Resize", "size": [int(height), int(width)]},
        {"type": "Normalize", "div255": spec.value_range != 255.0, "norm_type": None},
        {"type": "ToTensor"},
    ]


def build_yaml_dict(config: RowConfig, spec: ModelSpec, onnx_path: Path, input_name: str,
                    input_shape: Sequence[int], precision: str, name: str, workspace: Path, *,
                    quant: str, per_channel: bool, skip_conv_layers: Sequence[int],
                    calib_dir: Path | None, calib_num: int, weight_scale: str) -> dict[str, Any]:
    """The vamc build file as a plain dict (see the module docstring for the format's source).

    ``skip_conv_layers`` is always written, ``[]`` included: TVM's qconfig default is ``[0]`` (its
    first conv stays float), so an absent key would not mean "none" (docs/vacc.md). ``weight_scale``
    is the qconfig key MMDeploy's VACC backend passes; the zoo's build files leave it out."""
    shape = [int(d) for d in input_shape]
    compile_opts: dict[str, Any] = {"data_transport_mode": 1}
    compile_opts.update(COMPILE_EXTRAS.get(config.arch, {}))
    backend: dict[str, Any] = {"type": "tvm_vacc", "dtype": precision, "compile": compile_opts}
    doc: dict[str, Any] = {
        "name": name,
        "frontend": {"checkpoint": str(Path(onnx_path).resolve()), "shape": {input_name: shape},
                     "type": "onnx", "dtype": "fp32"},
        "backend": backend,
    }
    if precision == "int8":
        quantize: dict[str, Any] = {"calibrate_mode": quant, "quantize_per_channel": per_channel,
                                    "weight_scale": weight_scale,
                                    "skip_conv_layers": [int(i) for i in skip_conv_layers]}
        backend["quantize"] = quantize
        assert calib_dir is not None
        doc["dataset"] = {
            "type": "tvm",
            "path": str(Path(calib_dir).resolve()),
            "sampler": {"suffix": CALIB_SUFFIX, "get_data_num": int(calib_num)},
            "process_ops": process_ops(spec, shape[2], shape[3]),
        }
    doc["workspace"] = {"path": str(workspace)}
    return doc


def build_vdsp_dict(spec: ModelSpec, height: int, width: int) -> dict[str, Any]:
    """The VDSP fusion-op JSON (vendor layout: ``OpType`` + ``OpConfig``).

    The device receives an RGB planar uint8 image of the model size (``IimageFormat`` RGB_PLANAR),
    resizes it bilinearly as OpenCV does, converts colour for a BGR model, and normalizes:
    ``DIV255`` for [0, 1] models, ``EQUAL`` (x * 1) for official EDSR, which takes 0-255.
    """
    h, w = int(height), int(width)
    return {
        "OpType": "FUSION_OP_RGB_RESIZE_CVTCOLOR_NORM_TENSOR",
        "OpConfig": {
            "IimageFormat": "RGB_PLANAR",
            "IimageWidth": w,
            "IimageHeight": h,
            "OimageWidth": w,
            "OimageHeight": h,
            "IimageWidthPitch": w,
            "IimageHeightPitch": h,
            "Mean": [0.0, 0.0, 0.0],
            "Std": [1.0, 1.0, 1.0],
            "NormaType": "EQUAL" if spec.value_range == 255.0 else "DIV255",
            "ColorCvtCode": "RGB2BGR" if spec.channel_order == "BGR" else "NO_CHANGE",
            "ResizeType": "BILINEAR_CV",
        },
    }


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (:func:`vacc_deploy.artifacts.atomic_write_text`)."""
    atomic_write_text(path, text)


def write_vamc_files(config: RowConfig, spec: ModelSpec, onnx_path: Path, input_name: str,
                     input_shape: tuple[int, int, int, int],
                     precision: Literal["int8", "fp16"], out_dir: Path, *,
                     quant: str = "percentile", per_channel: bool = True,
                     skip_conv_layers: Sequence[int] = (), calib_dir: Path | None = None,
                     calib_num: int = 50, weight_scale: str = DEFAULT_WEIGHT_SCALE) -> VamcFiles:
    """Write ``<out_dir>/vamc_build.yaml`` and ``<out_dir>/vdsp_params.json`` atomically.

    ``workspace.path`` is ``<out_dir>/deploy_weights`` (absolute), so the compiled model lands in
    ``<out_dir>/deploy_weights/<name>/`` whatever directory vamc is started from.

    Raises:
        UsageError: unknown precision or quant mode, bad shape or skip list, int8 without a
            calibration folder holding at least ``calib_num`` PNG images.
    """
    calib = Path(calib_dir) if calib_dir is not None else None
    _check_args(precision, quant, skip_conv_layers, calib, calib_num, input_shape, weight_scale)
    out_dir = Path(out_dir).resolve()
    name = model_name(config.name, precision, quant, per_channel, skip_conv_layers)
    workspace = out_dir / DEPLOY_DIR
    doc = build_yaml_dict(config, spec, onnx_path, input_name, input_shape, precision, name,
                          workspace, quant=quant, per_channel=per_channel,
                          skip_conv_layers=skip_conv_layers, calib_dir=calib, calib_num=calib_num,
                          weight_scale=weight_scale)
    yaml_path, vdsp_path = out_dir / YAML_NAME, out_dir / VDSP_NAME
    write_atomic(yaml_path, yaml.safe_dump(doc, sort_keys=False, default_flow_style=None))
    vdsp = build_vdsp_dict(spec, input_shape[2], input_shape[3])
    write_atomic(vdsp_path, json.dumps(vdsp, indent=4) + "\n")
    return VamcFiles(name=name, yaml_path=yaml_path, vdsp_json=vdsp_path,
                     deploy_dir=workspace / name)
