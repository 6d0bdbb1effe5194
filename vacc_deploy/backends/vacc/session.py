"""The Vastai VACC backend: compile with the vendor compiler ``vamc`` and run with ``vaststreamx``.

Both tools are optional. Importing this module imports neither: ``vamc`` is looked up on PATH when
:func:`compile_vamc` runs, and ``vaststreamx`` is imported only when a :class:`VaccSession` is
created. See ``docs/vacc.md`` for the flow end to end.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from vacc_deploy.backends.base import Backend, BuildInputs, BuiltModel, SessionOptions, installed
from vacc_deploy.backends.vacc import NAME, PRECISIONS
from vacc_deploy.backends.vacc.compile import (  # noqa: F401  (re-exported: the backend's public names)
    MODEL_PREFIX,
    compile_vamc,
    find_model_prefix,
    vamc_found,
)
from vacc_deploy.backends.vacc.files import VAMC_QUANT_MODES, VamcFiles, write_vamc_files  # noqa: F401
from vacc_deploy.errors import BackendUnavailable, BuildError, UsageError

#: Names re-exported here from :mod:`.compile` and :mod:`.files`.
REEXPORTED = (MODEL_PREFIX, compile_vamc, vamc_found, VAMC_QUANT_MODES, VamcFiles, write_vamc_files)


def vacc_available() -> tuple[bool, str]:
    """Whether the VACC backend can be used here (``vamc`` on PATH and ``vaststreamx`` importable),
    with a one-line reason. Nothing is imported."""
    vamc = vamc_found()
    has_vsx = installed("vaststreamx")
    if vamc and has_vsx:
        return True, f"vamc found at {vamc} and vaststreamx is importable"
    missing = [m for m, ok in (("vamc not found on PATH", vamc), ("vaststreamx not importable", has_vsx))
               if not ok]
    return False, "; ".join(missing)


def _import_vsx() -> Any:
    """Import vaststreamx, turning its absence into BackendUnavailable."""
    try:
        return importlib.import_module("vaststreamx")
    except ImportError as exc:
        raise BackendUnavailable(f"vaststreamx is not importable ({exc}); install the Vastai "
                                 "VastStreamX SDK, or run on another backend") from exc


class VaccSession:
    """Runs a vamc-compiled model on a VACC card through vaststreamx.

    The input is a float32 NCHW batch already pre-processed as the ONNX model expects (so the
    device-side VDSP op is not in the graph; ``vdsp_json`` is kept for reference and checked to
    exist). The graph holds only the model operator, fed fp16 CHW tensors with
    ``vsx.from_numpy`` as the vendor's tensor-input samples do.
    """

    def __init__(self, model_dir: Path, vdsp_json: Path | None,
                 input_shape: tuple[int, int, int, int], *, device_id: int = 0,
                 batch_size: int = 1) -> None:
        model_dir = Path(model_dir)
        prefix = find_model_prefix(model_dir)
        if prefix is None:
            raise UsageError(f"{model_dir}: no compiled VACC model (mod.so/.json/.params)")
        if vdsp_json is not None and not Path(vdsp_json).is_file():
            raise UsageError(f"VDSP parameter file not found: {vdsp_json}")
        if len(input_shape) != 4:
            raise UsageError(f"input shape {tuple(input_shape)}: expected (N, C, H, W)")
        self.input_shape = tuple(int(d) for d in input_shape)
        self.device_id, self.batch_size = int(device_id), int(batch_size)
        self.model_prefix, self.vdsp_json = prefix, vdsp_json
        self._vsx = vsx = _import_vsx()
        if vsx.set_device(self.device_id) != 0:
            raise BackendUnavailable(f"vaststreamx: cannot open VACC device {self.device_id}")
        self._model = vsx.Model(str(prefix), self.batch_size)
        self._model_op = vsx.ModelOperator(self._model)
        self._graph = vsx.Graph()
        self._graph.add_operators(self._model_op)
        self._stream = vsx.Stream(self._graph, vsx.StreamBalanceMode.ONCE)
        self._stream.register_operator_output(self._model_op)
        self._stream.build()

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run a float32 NCHW batch; returns the float32 NCHW output."""
        batch = np.asarray(batch)
        if batch.ndim != 4 or tuple(batch.shape[1:]) != self.input_shape[1:]:
            raise UsageError(f"VACC input batch has shape {batch.shape}, the model takes "
                             f"(N, {', '.join(map(str, self.input_shape[1:]))})")
        vsx = self._vsx
        outputs: list[np.ndarray] = []
        for start in range(0, batch.shape[0], self.batch_size):
            chunk = batch[start:start + self.batch_size]
            tensors = [[vsx.from_numpy(np.ascontiguousarray(img, dtype=np.float16), self.device_id)]
                       for img in chunk]
            results = self._stream.run_sync(tensors)
            for res in results:
                out = np.asarray(vsx.as_numpy(res[0]), dtype=np.float32)
                outputs.append(out.reshape((1,) + out.shape[-3:]))
        return np.concatenate(outputs, axis=0)

    def close(self) -> None:
        """Close the stream's input and wait for it (safe to call more than once)."""
        stream, self._stream = getattr(self, "_stream", None), None
        if stream is not None:
            stream.close_input()
            stream.wait_until_done()


def open_session(built: BuiltModel, options: SessionOptions = SessionOptions()) -> VaccSession:
    """Run the vamc output in ``built.vacc_dir`` (see :class:`VaccBackend`)."""
    if built.vacc_dir is None:
        raise BuildError(f"row '{built.row}': no VACC model was compiled (build it for the vacc backend first)")
    return VaccSession(built.vacc_dir, built.vdsp_json, built.input_shape,
                       device_id=options.device_id, batch_size=options.batch_size)


class VaccBackend(Backend):
    """The Vastai VACC accelerator: the vamc-compiled fp16/int8 model through vaststreamx."""

    name = NAME
    short = "vacc"
    summary = "Vastai VACC card (vamc build, vaststreamx)"
    artifact = "vamc"
    precisions = PRECISIONS
    calibration = "images"  # vamc calibrates on the calibration set's images itself
    card = True

    def unavailable_reason(self) -> str | None:
        ok, reason = vacc_available()
        return None if ok else reason

    def build(self, inputs: BuildInputs) -> BuiltModel:
        """The vamc build files, compiled (see :func:`vacc_deploy.backends.vacc.build.build_vacc`)."""
        from vacc_deploy.backends.vacc.build import build_vacc

        return build_vacc(inputs, compile=True)

    def open(self, built: BuiltModel, options: SessionOptions = SessionOptions()) -> VaccSession:
        return open_session(built, options)
