"""The checks an export must pass, and the graph clean-ups it gets before it is saved: the shape a
row can take, onnxsim verified against the unsimplified model, Constant nodes as initializers, the
row's conventions in the metadata, ``onnx.checker``, pixel shuffles as ``DepthToSpace`` CRD. Torch-free
(ONNX Runtime runs the checks).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from vacc_deploy.config import RowConfig
from vacc_deploy.errors import ExportError, ShapeError
from vacc_deploy.spec import SPEC_METADATA_KEY, ModelSpec

PARITY_TOLERANCE = 1e-4  # max |onnx - torch| relative to the torch output's range


def check_shape(shape: tuple[int, int, int, int], spec: ModelSpec, row: str) -> None:
    """Raise ShapeError when the model cannot take ``shape``."""
    reason = spec.check_input_hw(shape[2], shape[3])
    if reason:
        raise ShapeError(f"{'x'.join(map(str, shape))}: row '{row}' cannot take it: {reason}", option="shape")


def ort_output(model: onnx.ModelProto, path: Path, x: np.ndarray) -> np.ndarray:
    """Save ``model`` to ``path`` and run ``x`` (float32 NCHW) through it on ONNX Runtime's CPU
    provider, default options (the export's reference run, not a tuned session). Raises ExportError
    when ONNX Runtime cannot load or run it."""
    import onnxruntime as ort

    onnx.save(model, str(path))
    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(x, dtype=np.float32)})[0]
    except Exception as exc:  # ORT raises its own exception types
        raise ExportError(f"{path}: ONNX Runtime cannot run the exported model ({str(exc)[:200]})") from exc


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
        raise ExportError(f"row '{config.name}': exported model fails onnx.checker: {str(exc)[:200]}") from exc
    _check_depth_to_space(model)
    return model


