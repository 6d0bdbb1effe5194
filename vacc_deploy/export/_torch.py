"""The torch half of the export stage: build the module, trace it to ONNX, verify against PyTorch.
Imported only when an export must actually run."""

from __future__ import annotations

import io
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from vacc_deploy import artifacts
from vacc_deploy.config import RowConfig
from vacc_deploy.errors import ExportError
from vacc_deploy.export.checks import PARITY_TOLERANCE, finalize, ort_output, simplify
from vacc_deploy.models import create_model, row_spec
from vacc_deploy.imaging.processing import crop_or_cover, sample_image, to_network
from vacc_deploy.spec import ModelSpec


def torch_export(model: torch.nn.Module, shape: tuple[int, ...], opset: int) -> onnx.ModelProto:
    """Trace ``model`` at the fixed ``shape`` with the TorchScript exporter (input "input", output "output")."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.zeros(shape),), buf, dynamo=False, opset_version=opset,
            input_names=["input"], output_names=["output"], do_constant_folding=True,
        )
    return onnx.load_from_string(buf.getvalue())


def parity_input(spec: ModelSpec, shape: tuple[int, ...]) -> np.ndarray:
    """The network input used for the parity check: a real photo cropped to ``shape``."""
    return to_network(crop_or_cover(sample_image(), shape[2], shape[3]), spec)


def export_into(tmp: Path, config: RowConfig, model_arg: Any, label: str, shape: tuple[int, ...], opset: int) -> dict[str, Any]:
    """Export, simplify, check and verify into folder ``tmp``; return the manifest fields."""
    spec = row_spec(config)
    t0 = time.perf_counter()
    model = create_model(config, model_arg)
    x = parity_input(spec, shape)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    out_range = float(ref.max() - ref.min()) or 1.0
    exported = torch_export(model, shape, opset)
    exported, simplified, note = simplify(exported, x, tmp, PARITY_TOLERANCE * out_range * 0.1)
    final = finalize(exported, config, spec, label)
    onnx_path = tmp / "model.onnx"
    got = ort_output(final, onnx_path, x)
    for scratch in ("check_raw.onnx", "check_simple.onnx"):
        (tmp / scratch).unlink(missing_ok=True)
    if got.shape != ref.shape:
        raise ExportError(f"row '{config.name}': ONNX output shape {got.shape} != PyTorch {ref.shape}")
    max_abs = float(np.max(np.abs(got - ref)))
    rel = max_abs / out_range
    if not rel <= PARITY_TOLERANCE:
        raise ExportError(f"row '{config.name}': ONNX differs from PyTorch by {max_abs:.3g} ({rel:.3g} of range)")
    seconds = time.perf_counter() - t0
    parity = {"input": "skimage astronaut, centre crop", "max_abs": max_abs, "rel_to_range": rel,
              "output_range": out_range, "tolerance_rel": PARITY_TOLERANCE}
    artifacts.atomic_write_json(tmp / "parity.json", parity)
    return {"output_shape": tuple(ref.shape), "simplified": simplified, "notes": [note] if note else [],
            "parity_max_abs": max_abs, "parity_rel": rel, "export_seconds": seconds,
            "size_bytes": onnx_path.stat().st_size}
