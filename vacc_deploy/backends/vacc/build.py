"""Build stage for the VACC backend: the vamc build YAML and VDSP JSON (always written, so they
can be carried to a VACC host), then ``vamc compile`` when vamc is installed. Torch-free.

Folder: ``<workdir>/<row>/vacc/<precision>[-<method>]-<key>/`` with ``vamc_build.yaml``,
``vdsp_params.json``, ``vamc_compile.log`` and vamc's ``deploy_weights/<name>/``. The int8
``dataset`` is the calibration set's folder of PNG samples (see docs/vacc.md): vamc calibrates
itself, so this build takes the set, not ranges.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vacc_deploy import artifacts
from vacc_deploy.backends.base import BuildInputs, BuiltModel
from vacc_deploy.backends.ort.layers import float_layers
from vacc_deploy.backends.vacc import NAME
from vacc_deploy.backends.vacc.compile import compile_vamc, find_model_prefix, vamc_found
from vacc_deploy.backends.vacc import PRECISIONS
from vacc_deploy.backends.vacc.files import write_vamc_files
from vacc_deploy.errors import BackendUnavailable, UsageError


@dataclass
class VaccBuild:
    """What the VACC build produced: the vamc input files, and the compiled model when vamc ran."""

    name: str
    folder: Path
    yaml_path: Path
    vdsp_json: Path
    deploy_dir: Path
    compiled: bool
    float_layer_indices: list[int]


def compile_hint(yaml_path: Path) -> str:
    """How to compile the written files on a VACC host."""
    return (f"copy {yaml_path.parent} (and the ONNX model and calibration folder it names) to a VACC host "
            f"and run: vamc compile {yaml_path.name}")


def write_files(inputs: BuildInputs) -> VaccBuild:
    """Write the vamc files for ``inputs.options.precision`` (int8 or fp16) without compiling.

    Raises UsageError (option ``precision``: fp32; option ``calib_images``: int8 without a
    calibration set; and what :func:`write_vamc_files` refuses)."""
    opts, exported, calib = inputs.options, inputs.exported, inputs.calib
    if opts.precision not in PRECISIONS:
        raise UsageError(f"the vacc backend builds {' or '.join(PRECISIONS)}, not {opts.precision}",
                         option="precision")
    if exported is None:
        raise UsageError(f"row '{inputs.config.name}': a vamc build needs the fp32 export")
    if opts.precision == "int8" and calib is None:
        raise UsageError("an int8 build needs calibration images (none given)", option="calib_images")
    _, indices = float_layers(exported.onnx_path, opts) if opts.precision == "int8" else ([], [])
    quant = opts.quant or inputs.config.quant.method
    key = artifacts.stage_key({"onnx": str(exported.onnx_path), "opts": repr(opts), "quant": quant,
                               "calib": calib.sha256 if calib else None})
    tag = f"int8-{quant}" if opts.precision == "int8" else "fp16"
    folder = artifacts.row_workdir(inputs.config.name, inputs.workdir) / "vacc" / f"{tag}-{key}"
    files = write_vamc_files(inputs.config, exported.spec, Path(exported.onnx_path).resolve(), exported.input_name,
                             tuple(exported.input_shape), opts.precision, folder, quant=quant,
                             per_channel=opts.per_channel, skip_conv_layers=indices,
                             calib_dir=calib.folder.resolve() if calib else None,
                             calib_num=calib.num if calib else 1, weight_scale=opts.weight_scale)
    return VaccBuild(files.name, folder, files.yaml_path, files.vdsp_json, files.deploy_dir, False, indices)


def build_vacc(inputs: BuildInputs, *, compile: bool = True, timeout_s: float | None = None) -> BuiltModel:
    """The vamc files (:func:`write_files`), compiled when ``compile``.

    Raises what :func:`write_files` raises, BackendUnavailable (compile asked but vamc is not on
    PATH; the files are written first) and BuildError (vamc failed).
    """
    vb = write_files(inputs)
    if compile:
        if vamc_found() is None:
            raise BackendUnavailable(f"vamc not found on PATH; build files written to {vb.folder}: "
                                     f"{compile_hint(vb.yaml_path)}")
        if find_model_prefix(vb.deploy_dir) is None:
            compile_vamc(vb.yaml_path, timeout_s=timeout_s, log_path=vb.folder / "vamc_compile.log")
        vb.compiled = True
    exported = inputs.exported
    assert exported is not None
    opts = inputs.options
    return BuiltModel(row=inputs.config.name, spec=exported.spec, input_shape=tuple(exported.input_shape),
                      precision=opts.precision, quant=opts.quant if opts.precision == "int8" else None,
                      label=exported.weights, vacc_dir=vb.deploy_dir if vb.compiled else None,
                      vdsp_json=vb.vdsp_json, config=inputs.config, backend=NAME, folder=vb.folder, vamc=vb)
