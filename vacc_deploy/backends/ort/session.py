"""ONNX Runtime session: runs an exported or built ONNX model on the CPU. Torch-free.

The session interface shared by all backends: ``input_shape`` (N, C, H, W) of the model's fixed
input, and ``run(batch)`` taking a float32 NCHW batch pre-processed as the model expects and
returning the float32 NCHW output.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vacc_deploy.machine import x86_without_vnni
from vacc_deploy.backends.base import BuiltModel, SessionOptions, installed, onnx_model
from vacc_deploy.backends.ort.onnx_backend import OnnxBackend, int8_8bit_weights  # noqa: F401  (re-exported)
from vacc_deploy.backends.ort import NAME
from vacc_deploy.errors import BuildError
from vacc_deploy.spec import SPEC_METADATA_KEY, ModelSpec


def session_options(threads: int | None = None, accurate_int8: bool = False):
    """ORT options tuned for these models: full graph optimisation, memory pattern on, sequential
    execution, ``threads`` intra-op threads (default: all cores), no spin-waiting of idle threads.
    ``accurate_int8`` sets ``session.x64quantprecision`` (exact int8 arithmetic on AVX2-only CPUs;
    see :func:`vacc_deploy.machine.x86_without_vnni`).

    Spinning off: the kernels of these convolutional models run for milliseconds, so waking a
    sleeping thread costs nothing measurable, while spinning threads compete with the working ones
    (and with other processes) for cores. Interleaved A/B on lesrcnn_x2 (2 shared AVX2 cores):
    p50 ×0.92 (fp32 128x128), ×0.84 (fp32 32x32), ×0.80 (int8 128x128). I/O binding with a
    preallocated output gave no measurable gain (±1-6 %, within noise) and is not used."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.enable_mem_pattern = True
    opts.intra_op_num_threads = threads or os.cpu_count() or 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    if accurate_int8:
        opts.add_session_config_entry("session.x64quantprecision", "1")
    return opts


class OrtSession:
    """A loaded ONNX model on ONNX Runtime's CPU execution provider.

    Attributes:
        path: the ONNX file.
        input_name, output_name: the graph's single input and output.
        input_shape: the fixed (N, C, H, W) input shape (raises BuildError if not fixed).
        spec: the :class:`ModelSpec` stored in the model's metadata, or None.
    """

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        try:
            accurate = int8_8bit_weights(self.path) and x86_without_vnni()
            self._sess = ort.InferenceSession(
                str(self.path), session_options(threads, accurate), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own exception types
            raise BuildError(f"{self.path}: ONNX Runtime cannot load the model ({str(exc)[:200]})") from exc
        inp, out = self._sess.get_inputs()[0], self._sess.get_outputs()[0]
        self.input_name, self.output_name = inp.name, out.name
        if not all(isinstance(d, int) for d in inp.shape):
            raise BuildError(f"{self.path}: input '{inp.name}' has no fixed shape: {inp.shape}")
        self.input_shape = tuple(inp.shape)
        meta = self._sess.get_modelmeta().custom_metadata_map
        self.spec = ModelSpec.from_json(meta[SPEC_METADATA_KEY]) if SPEC_METADATA_KEY in meta else None

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch (float32 NCHW of the model's input shape); returns float32 NCHW."""
        x = np.ascontiguousarray(batch, dtype=np.float32)
        return self._sess.run([self.output_name], {self.input_name: x})[0]


def open_session(built: BuiltModel, options: SessionOptions = SessionOptions()) -> OrtSession:
    """Run ``built.onnx_path`` (see :class:`OrtBackend`)."""
    return OrtSession(onnx_model(built, "ONNX Runtime"), options.threads)


class OrtBackend(OnnxBackend):
    """ONNX Runtime's CPU execution provider on the fp32/fp16/int8 ONNX builds (the default)."""

    name = NAME
    short = "ort"
    summary = "ONNX Runtime CPU (fixed-shape ONNX build, tiled)"

    def unavailable_reason(self) -> str | None:
        return None if installed(NAME) else f"{NAME} is not installed"

    def open(self, built: BuiltModel, options: SessionOptions = SessionOptions()) -> OrtSession:
        return open_session(built, options)
