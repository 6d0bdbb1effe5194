"""Build stage for the VACC backend: the vamc build YAML and VDSP JSON (always written, so they
can be carried to a VACC host), then ``vamc compile`` when vamc is installed. Torch-free.

Folder: ``<workdir>/<row>/vacc/<precision>[-<method>]-<key>/`` with ``vamc_build.yaml``,
``vdsp_params.json``, ``vamc_compile.log`` and vamc's ``deploy_weights/<name>/``. The int8
``dataset`` is the calibration set's folder of PNG samples (see docs/vacc.md).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from vacc_deploy import artifacts
from vacc_deploy.backends.ort.build import BuildOptions, float_layers
from vacc_deploy.calibration.dataset import CalibSet
from vacc_deploy.config import RowConfig
from vacc_deploy.errors import BackendUnavailable, UsageError
from vacc_deploy.export import ExportResult
from vacc_deploy.spec import ModelSpec

VACC_PRECISIONS = ("int8", "fp16")


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
    return f"copy {yaml_path.parent} (and the ONNX model and calibration folder it names) to a VACC host and run: vamc compile {yaml_path.name}"


def build_vacc(config: RowConfig, spec: ModelSpec, exported: ExportResult, opts: BuildOptions,
               calib: CalibSet | None, workdir: Path | None, *, compile: bool = True,
               timeout_s: float | None = None) -> VaccBuild:
    """Write the vamc files for ``opts.precision`` (int8 or fp16) and compile them if asked.

    Raises UsageError (fp32, or int8 without calibration), BackendUnavailable (compile asked but
    vamc is not on PATH; the files are written first), BuildError (vamc failed).
    """
    from vacc_deploy.backends.vacc.session import compile_vamc, find_model_prefix, write_vamc_files

    if opts.precision not in VACC_PRECISIONS:
        raise UsageError(f"--backend vacc builds {' or '.join(VACC_PRECISIONS)}, not {opts.precision}")
    if opts.precision == "int8" and calib is None:
        raise UsageError("--precision int8 needs calibration images: pass --calib-images DIR")
    _, indices = float_layers(exported.onnx_path, opts) if opts.precision == "int8" else ([], [])
    quant = opts.quant or config.quant.method
    key = artifacts.stage_key({"onnx": str(exported.onnx_path), "opts": repr(opts), "quant": quant,
                               "calib": calib.sha256 if calib else None})
    tag = f"int8-{quant}" if opts.precision == "int8" else "fp16"
    folder = artifacts.row_workdir(config.name, workdir) / "vacc" / f"{tag}-{key}"
    files = write_vamc_files(config, spec, Path(exported.onnx_path).resolve(), exported.input_name,
                             tuple(exported.input_shape), opts.precision, folder, quant=quant,
                             per_channel=opts.per_channel, skip_conv_layers=indices,
                             calib_dir=calib.folder.resolve() if calib else None,
                             calib_num=calib.num if calib else 50, weight_scale=opts.weight_scale)
    result = VaccBuild(files.name, folder, files.yaml_path, files.vdsp_json, files.deploy_dir, False, indices)
    if not compile:
        return result
    if shutil.which("vamc") is None:
        raise BackendUnavailable(f"vamc not found on PATH; build files written to {folder}: {compile_hint(files.yaml_path)}")
    if find_model_prefix(files.deploy_dir) is None:
        compile_vamc(files.yaml_path, timeout_s=timeout_s, log_path=folder / "vamc_compile.log")
    result.compiled = True
    return result
