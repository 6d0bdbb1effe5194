"""OpenVINO backend: runs our fp32/fp16/int8 ONNX builds (the same files ONNX Runtime runs) on
OpenVINO's CPU plugin. Optional (``pip install vacc-deploy[openvino]``); ``openvino`` is imported
only when a session is opened. Torch-free.

The int8 build is the QDQ file of :mod:`vacc_deploy.backends.ort.build`: OpenVINO's low-precision transformations
turn its QuantizeLinear/DequantizeLinear pairs into int8 convolutions, which on x86 CPUs without
VNNI run faster than ONNX Runtime's exact int8 kernels (see docs/benchmarks.md, OpenVINO section).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from vacc_deploy.backends.base import BuiltModel, SessionOptions, installed, onnx_model
from vacc_deploy.backends.ort.onnx_backend import OnnxBackend, int8_8bit_weights
from vacc_deploy.machine import x86_without_vnni
from vacc_deploy.errors import BackendUnavailable, BuildError

INSTALL_HINT = "pip install vacc-deploy[openvino]"
#: Said once per file when OpenVINO opens an int8 file with 8-bit weights on an x86 CPU without VNNI.
SATURATION_NOTE = ("OpenVINO on this CPU (x86 without VNNI) runs int8 convolutions on kernels that add pairs of "
                   "u8 x s8 products in int16 with saturation, so 8-bit weights can differ from ONNX Runtime's "
                   "exact int8 result; a 7-bit build (reduce_range on) runs exactly")

log = logging.getLogger(__name__)


def compile_config(threads: int | None) -> dict[str, Any]:
    """CPU plugin properties: one stream tuned for latency, ``threads`` inference threads (default:
    all cores), and f32 inference precision, so fp32 and fp16 builds compute in f32 on every CPU
    (the plugin would otherwise pick bf16 on CPUs that have it); int8 QDQ builds run int8 anyway."""
    return {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1",
            "INFERENCE_NUM_THREADS": int(threads or os.cpu_count() or 1),
            "INFERENCE_PRECISION_HINT": "f32"}


def _import_openvino() -> Any:
    """Import openvino, turning its absence into BackendUnavailable."""
    try:
        import openvino
    except ImportError as exc:
        raise BackendUnavailable(f"openvino is not importable ({exc}); {INSTALL_HINT}") from exc
    return openvino


class OpenVinoSession:
    """A fixed-shape ONNX model compiled for OpenVINO's CPU plugin.

    Attributes:
        path: the ONNX file. input_shape: its fixed (N, C, H, W) input (BuildError if not fixed).
    """

    def __init__(self, path: Path, threads: int | None = None) -> None:
        ov = _import_openvino()
        self.path = Path(path)
        try:
            model = ov.Core().read_model(str(self.path))
            shape = model.inputs[0].get_partial_shape()
            if shape.is_dynamic:
                raise BuildError(f"{self.path}: input has no fixed shape: {shape}")
            self._compiled = ov.Core().compile_model(model, "CPU", compile_config(threads))
        except BuildError:
            raise
        except Exception as exc:  # OpenVINO raises its own RuntimeError subclasses
            raise BuildError(f"{self.path}: OpenVINO cannot load the model ({str(exc)[:200]})") from exc
        self.input_shape = tuple(int(d) for d in shape.to_shape())
        self._request = self._compiled.create_infer_request()
        if x86_without_vnni() and int8_8bit_weights(self.path):
            log.warning("%s: %s", self.path.name, SATURATION_NOTE)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch (float32 NCHW of the model's input shape); returns a new float32 NCHW array."""
        x = np.ascontiguousarray(batch, dtype=np.float32)
        self._request.infer({0: x})
        return np.array(self._request.get_output_tensor(0).data, dtype=np.float32, copy=True)


def open_session(built: BuiltModel, options: SessionOptions = SessionOptions()) -> OpenVinoSession:
    """Run ``built.onnx_path`` (see :class:`OpenVinoBackend`)."""
    return OpenVinoSession(onnx_model(built, "OpenVINO"), options.threads)


class OpenVinoBackend(OnnxBackend):
    """OpenVINO's CPU plugin on the fp32/fp16/int8 ONNX builds."""

    name = "openvino"
    short = "ov"
    summary = "OpenVINO CPU (the same ONNX builds; optional extra [openvino])"

    def unavailable_reason(self) -> str | None:
        return None if installed("openvino") else f"openvino is not installed ({INSTALL_HINT})"

    def open(self, built: BuiltModel, options: SessionOptions = SessionOptions()) -> OpenVinoSession:
        return open_session(built, options)
