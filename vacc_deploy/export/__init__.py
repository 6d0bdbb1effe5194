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

import numpy as np
import onnx

from vacc_deploy import artifacts
from vacc_deploy.backends.ort.session import OrtSession
from vacc_deploy.config import RowConfig
from vacc_deploy.errors import ExportError, ShapeError
from vacc_deploy.spec import SPEC_METADATA_KEY, ModelSpec
from vacc_deploy.artifacts.guard import file_records, reusable, stage_lock
from vacc_deploy.weights import HOUSE_LABEL, resolve_with_kind, sha256_file, weights_kind

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17
PARITY_TOLERANCE = 1e-4  # max |onnx - torch| relative to the torch output's range
EXPORT_FORMAT = 5  # bump when the export folder's content or manifest changes (4, 5: no Constant nodes)


@dataclass
class ExportResult:
    """What the export stage produced (``to_dict`` is what ``manifest.json`` holds)."""

    row: str
    onnx_path: Path
    input_name: str
    output_name: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    opset: int
    weights: str
    weights_sha256: str | None
    spec: dict[str, Any]
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


def check_shape(shape: tuple[int, int, int, int], spec: ModelSpec, row: str) -> None:
    """Raise ShapeError when the model cannot take ``shape``."""
    reason = spec.check_input_hw(shape[2], shape[3])
    if reason:
        raise ShapeError(f"--shape {'x'.join(map(str, shape))}: row '{row}' cannot take it: {reason}")


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


def weights_identity(config: RowConfig, weights: str | Path | None) -> tuple[str, str | None, Any]:
    """(label, sha256 or None, argument for create_model) of a ``--weights`` value.

    The label is ``kind:file`` with kind ``official``, ``house`` (house weights, also when a path
    to the house file is given) or ``file``; the sha256 of the file goes into every cache key, so
    house and official weights never share a cached export.
    """
    if str(weights) == "synthetic":
        syn = config.weights.synthetic
        return f"synthetic-v1 (seed_base {syn.seed_base}, std_factor {syn.std_factor})", None, "synthetic"
    path, kind = resolve_with_kind(config, weights)
    digest = sha256_file(path)
    if kind == "file":
        kind = weights_kind(config, digest)
    if kind == "house" and weights is not None:
        log.warning("%s: HOUSE WEIGHTS %s — %s", config.name, path.name, HOUSE_LABEL)
    return f"{kind}:{path.name}", digest, path


def ort_output(model: onnx.ModelProto, path: Path, x: np.ndarray) -> np.ndarray:
    """Save ``model`` to ``path`` and run ``x`` through it on ONNX Runtime."""
    onnx.save(model, str(path))
    return OrtSession(path).run(x)


def simplify(model: onnx.ModelProto, x: np.ndarray, tmp: Path, tol: float) -> tuple[onnx.ModelProto, bool, str | None]:
    """onnxsim, verified on ``x`` against the unsimplified model; falls back (with a note) when it
    fails or changes the output by more than ``tol`` (absolute)."""
    try:
        import onnxsim

        simple, ok = onnxsim.simplify(model, check_n=0)
    except Exception as exc:  # onnxsim raises assorted errors
        return model, False, f"onnxsim failed ({str(exc)[:120]}); kept the unsimplified model"
    if not ok:
        return model, False, "onnxsim could not validate its result; kept the unsimplified model"
    before = ort_output(model, tmp / "check_raw.onnx", x)
    after = ort_output(simple, tmp / "check_simple.onnx", x)
    diff = float(np.max(np.abs(before - after)))
    if diff > tol:
        return model, False, f"onnxsim changed the output by {diff:.3g}; kept the unsimplified model"
    return simple, True, None


def _check_depth_to_space(model: onnx.ModelProto) -> None:
    for node in model.graph.node:
        if node.op_type == "DepthToSpace":
            mode = next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == "mode"), b"DCR")
            if mode not in (b"CRD", "CRD"):
                raise ExportError(f"node {node.name}: DepthToSpace mode {mode!r}, expected CRD (pixel shuffle)")


def constants_to_initializers(model: onnx.ModelProto) -> int:
    """Turn every top-level ``Constant`` node holding a tensor (``value``) into an initializer of the
    same name; returns how many. Edits ``model`` in place.

    onnxsim folds RRDBNet's ``conv5(x) * 0.2`` into the conv and leaves the folded weights and bias
    as Constant nodes (69 of x4plus's 351 convs). ONNX Runtime's quantizer treats only initializers
    as weights: a Constant-node weight is calibrated and quantized like an activation (one uint8
    range for the whole tensor) and its bias stays float. As initializers they get per-channel int8
    weights and int32 biases like every other conv; the float model computes the same values.
    Their ``value_info`` entries are dropped: an initializer carries its own type, and a stale float
    entry contradicts the fp16 build's converted initializer and fails ONNX shape inference there.
    """
    consts = [n for n in model.graph.node if n.op_type == "Constant"
              and len(n.attribute) == 1 and n.attribute[0].name == "value"]
    for node in consts:
        tensor = onnx.TensorProto()
        tensor.CopyFrom(node.attribute[0].t)
        tensor.name = node.output[0]
        model.graph.initializer.append(tensor)
        model.graph.node.remove(node)
    names = {n.output[0] for n in consts}
    kept = [v for v in model.graph.value_info if v.name not in names]
    del model.graph.value_info[:]
    model.graph.value_info.extend(kept)
    return len(consts)


def finalize(model: onnx.ModelProto, config: RowConfig, spec: ModelSpec, label: str) -> onnx.ModelProto:
    """The exported model as it is saved: Constant nodes as initializers, the row's conventions in
    its metadata, ``onnx.checker`` clean (full check) and pixel shuffles as DepthToSpace CRD.
    Raises ExportError."""
    constants_to_initializers(model)
    meta = {SPEC_METADATA_KEY: spec.to_json(), "vacc_deploy.row": config.name, "vacc_deploy.weights": label}
    del model.metadata_props[:]
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    model.doc_string = f"vacc-deploy export of {config.name} ({label})"
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"row '{config.name}': exported model fails onnx.checker: {str(exc)[:200]}") from None
    _check_depth_to_space(model)
    return model


def _read_cached(manifest: Path) -> ExportResult | None:
    """The ExportResult a cached manifest records, or None when it is unreadable (then re-export)."""
    try:
        data = artifacts.read_json(manifest)
        known = {f.name for f in fields(ExportResult)}
        kept = {k: v for k, v in data.items() if k in known}
        result = ExportResult(**{**kept, "onnx_path": Path(data["onnx_path"]), "cached": True})
    except (ValueError, TypeError, KeyError):
        return None
    return result if result.onnx_path.is_file() else None


def export_row(
    config: RowConfig,
    weights: str | Path | None = None,
    shape: tuple[int, int, int, int] | None = None,
    opset: int = DEFAULT_OPSET,
    workdir: Path | None = None,
    force: bool = False,
) -> ExportResult:
    """Export a row to fixed-shape ONNX (or reuse the cached export with the same inputs).

    Args:
        config: the row. weights: None/"official", "synthetic" or a checkpoint path.
        shape: (1, 3, H, W); default the row's ``input_shape``. opset: ONNX opset.
        workdir: the work folder (default ``./work``). force: redo even when cached. A cached
        export whose files do not match their manifest records (size, sha256) is redone with a warning.

    Raises:
        ShapeError for a shape the model cannot take; WeightsError; ExportError when the export,
        onnx.checker or the parity check (max |ONNX - PyTorch| <= 1e-4 of the output range) fails.
    """
    shape = tuple(shape or config.input_shape)
    label, digest, model_arg = weights_identity(config, weights)
    key = artifacts.stage_key({"format": EXPORT_FORMAT, "config": config.model_dump(mode="json"),
                               "code": family_source_digest(config.arch), "weights": label, "sha": digest,
                               "shape": shape, "opset": opset, "versions": artifacts.tool_versions()})
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
                                  spec=asdict(spec), output_name="output", input_shape=shape, opset=opset,
                                  weights=label, weights_sha256=digest, **produced)
            artifacts.atomic_write_json(tmp / "manifest.json", {**result.to_dict(), "key": key,
                                                                "versions": artifacts.tool_versions(),
                                                                "files": file_records(tmp)})
    for note in result.notes:
        log.warning("%s: %s", config.name, note)
    return result
