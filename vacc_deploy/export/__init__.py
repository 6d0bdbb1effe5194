"""Export stage: PyTorch → fixed-shape, simplified, checked ONNX, with a parity check against
PyTorch on a real image crop.

This module is torch-free: finding a cached export needs no torch; the export itself is done by
:mod:`vacc_deploy.export._torch`, imported only when an export must run.

Output folder ``<workdir>/<row>/export/<H>x<W>-op<opset>-<key>/`` holds ``model.onnx``,
``parity.json`` and ``manifest.json``; it appears whole or not at all, and is reused when its
inputs (config, weights hash, shape, opset, tool versions) have not changed.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from vacc_deploy import artifacts, machine
from vacc_deploy.artifacts.guard import file_records, reusable, stage_lock
from vacc_deploy.config import RowConfig
from vacc_deploy.export.checks import check_shape
from vacc_deploy.spec import ModelSpec
from vacc_deploy.types import DEFAULT_OPSET
from vacc_deploy.weights import WeightsRef, weights_identity

__all__ = ["EXPORT_FORMAT", "ExportResult", "export_row", "family_source_digest"]

log = logging.getLogger(__name__)

EXPORT_FORMAT = 5  # bump when the export folder's content or manifest changes (4, 5: no Constant nodes)


@dataclass
class ExportResult:
    """What the export stage produced (``to_dict`` is what ``manifest.json`` holds): the fixed-shape
    fp32 ONNX file, its input/output names and shapes (N, C, H, W), the weights' label and sha256,
    the row's conventions (``spec``), whether onnxsim simplified it, the parity with PyTorch (max
    abs difference, and relative to the output range), seconds, size in bytes and notes."""

    row: str
    onnx_path: Path
    input_name: str
    output_name: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    opset: int
    weights: str
    weights_sha256: str | None
    spec: ModelSpec
    simplified: bool
    parity_max_abs: float
    parity_rel: float
    export_seconds: float
    size_bytes: int
    notes: list[str] = field(default_factory=list)
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["onnx_path"] = str(self.onnx_path)
        return d


def family_source_digest(arch: str) -> str:
    """sha256 of the family's model code (``models/<arch>.py``, ``models/common.py``) and of
    ``spec.py``, read as files (no torch import): a change to an architecture or to its declared
    conventions invalidates its cached exports."""
    import hashlib

    root = Path(__file__).resolve().parent.parent  # vacc_deploy/
    h = hashlib.sha256()
    for path in (root / "models" / f"{arch}.py", root / "models" / "common.py", root / "spec.py"):
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


def _read_cached(manifest: Path) -> ExportResult | None:
    """The ExportResult a cached manifest records, or None when it is unreadable (then re-export)."""
    try:
        data = artifacts.read_json(manifest)
        known = {f.name for f in fields(ExportResult)}
        kept = {k: v for k, v in data.items() if k in known}
        result = ExportResult(**{**kept, "onnx_path": Path(data["onnx_path"]), "spec": ModelSpec(**data["spec"]),
                                 "input_shape": tuple(data["input_shape"]),
                                 "output_shape": tuple(data["output_shape"]), "cached": True})
    except (ValueError, TypeError, KeyError):
        return None
    return result if result.onnx_path.is_file() else None


def export_row(
    config: RowConfig,
    weights: WeightsRef | str | Path | None = None,
    shape: tuple[int, int, int, int] | None = None,
    opset: int = DEFAULT_OPSET,
    workdir: Path | None = None,
    force: bool = False,
) -> ExportResult:
    """Export a row to fixed-shape ONNX (or reuse the cached export with the same inputs).

    Args:
        config: the row. weights: its resolved :class:`~vacc_deploy.weights.WeightsRef` (the
            pipeline's), or a choice to resolve: None/"official", "house", "synthetic" or a path.
        shape: (1, 3, H, W); default the row's ``input_shape``. opset: ONNX opset.
        workdir: the work folder (default ``./work``). force: redo even when cached. A cached
        export whose files do not match their manifest records (size, sha256) is redone with a warning.

    Raises:
        ShapeError for a shape the model cannot take; WeightsError; ExportError when the export,
        onnx.checker or the parity check (max |ONNX - PyTorch| <= 1e-4 of the output range) fails.
    """
    shape = tuple(shape or config.input_shape)
    ref = weights if isinstance(weights, WeightsRef) else weights_identity(config, weights)
    label, digest, model_arg = ref
    key = artifacts.stage_key({"format": EXPORT_FORMAT, "config": config.model_dump(mode="json"),
                               "code": family_source_digest(config.arch), "weights": label, "sha": digest,
                               "shape": shape, "opset": opset, "versions": machine.tool_versions()})
    out_dir = artifacts.row_workdir(config.name, workdir) / "export" / f"{shape[2]}x{shape[3]}-op{opset}-{key}"
    with stage_lock(out_dir):  # a concurrent identical export finishes first; this one reuses it
        cached = _read_cached(out_dir / "manifest.json") if reusable(out_dir, force) is not None else None
        if cached is not None:
            return cached
        from vacc_deploy.models import row_spec
        from vacc_deploy.export._torch import export_into

        spec = row_spec(config)
        check_shape(shape, spec, config.name)
        with artifacts.staged_dir(out_dir) as tmp:
            produced = export_into(tmp, config, model_arg, label, shape, opset)
            result = ExportResult(row=config.name, onnx_path=out_dir / "model.onnx", input_name="input",
                                  spec=spec, output_name="output", input_shape=shape, opset=opset,
                                  weights=label, weights_sha256=digest, **produced)
            artifacts.atomic_write_json(tmp / "manifest.json", {**result.to_dict(), "key": key,
                                                                "versions": machine.tool_versions(),
                                                                "files": file_records(tmp)})
    for note in result.notes:
        log.warning("%s: %s", config.name, note)
    return result
