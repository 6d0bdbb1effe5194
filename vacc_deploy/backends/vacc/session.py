"""The Vastai VACC backend: compile with the vendor compiler ``vamc`` and run with ``vaststreamx``.

Both tools are optional. Importing this module imports neither: ``vamc`` is looked up on PATH when
:func:`compile_vamc` runs, and ``vaststreamx`` is imported only when a :class:`VaccSession` is
created. See ``docs/vacc.md`` for the flow end to end.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import signal
import subprocess
import threading
from collections import deque
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from vacc_deploy.backends.base import Backend, BuiltModel, SessionOptions, installed
from vacc_deploy.backends.vacc.files import (  # noqa: F401  (re-exported)
    VAMC_QUANT_MODES,
    VamcFiles,
    write_vamc_files,
)
from vacc_deploy.errors import BackendUnavailable, BuildError, UsageError

log = logging.getLogger(__name__)

#: Names re-exported from :mod:`vacc_deploy.backends.vacc.files` (imported from here elsewhere).
REEXPORTED = (VAMC_QUANT_MODES, VamcFiles, write_vamc_files)

MODEL_PREFIX = "mod"  # vamc writes deploy_weights/<name>/mod.{so,json,params}
MODEL_SUFFIXES = (".so", ".json", ".params")
LOG_TAIL_LINES = 20


def vacc_available() -> tuple[bool, str]:
    """Whether the VACC backend can be used here (``vamc`` on PATH and ``vaststreamx`` importable),
    with a one-line reason. Nothing is imported."""
    vamc = shutil.which("vamc")
    has_vsx = installed("vaststreamx")
    if vamc and has_vsx:
        return True, f"vamc found at {vamc} and vaststreamx is importable"
    missing = [m for m, ok in (("vamc not found on PATH", vamc), ("vaststreamx not importable", has_vsx))
               if not ok]
    return False, "; ".join(missing)


def find_model_prefix(deploy_dir: Path) -> Path | None:
    """The prefix of a compiled model in ``deploy_dir`` (``mod`` as vamc writes it, or ``<name>``),
    or None when its ``.so``, ``.json`` and ``.params`` files are not all there."""
    for stem in (MODEL_PREFIX, deploy_dir.name):
        prefix = deploy_dir / stem
        if all(prefix.with_name(stem + s).is_file() for s in MODEL_SUFFIXES):
            return prefix
    return None


def _read_build_yaml(yaml_path: Path) -> tuple[str, Path]:
    """Model name and deploy folder of a vamc build file. A relative ``workspace.path`` is taken
    relative to the YAML's folder, the directory :func:`compile_vamc` starts vamc in."""
    try:
        doc = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
        name = str(doc["name"])
        workspace = Path(str(doc["workspace"]["path"]))
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise UsageError(f"{yaml_path}: not a vamc build file ({exc})") from exc
    if not workspace.is_absolute():
        workspace = yaml_path.parent / workspace
    return name, workspace / name


def _pump(stream: Any, log_file: Any, tail: deque[str]) -> None:
    """Copy the child's output line by line to the log file, ``logging`` and the tail buffer."""
    for line in iter(stream.readline, ""):
        text = line.rstrip("\n")
        log_file.write(line)
        log_file.flush()
        tail.append(text)
        log.info("vamc: %s", text)
    stream.close()


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the child's whole process group (vamc starts worker processes)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _run_logged(cmd: Sequence[str], cwd: Path, timeout_s: float | None,
                log_path: Path) -> tuple[int, list[str]]:
    """Run ``cmd``; stream stdout+stderr into ``log_path``. Returns (exit code, last lines)."""
    tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as log_file:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", bufsize=1, start_new_session=True)
        pump = threading.Thread(target=_pump, args=(proc.stdout, log_file, tail), daemon=True)
        pump.start()
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            pump.join(timeout=5)
            raise BuildError(f"vamc compile timed out after {timeout_s:g} s and was killed "
                             f"(log: {log_path})") from None
        except BaseException:
            _kill_group(proc)
            raise
        pump.join(timeout=30)
    return code, list(tail)


def compile_vamc(yaml_path: Path, *, timeout_s: float | None, log_path: Path) -> Path:
    """Run ``vamc compile <yaml_path>`` in the YAML's folder and return the compiled model folder
    (``<workspace.path>/<name>/``).

    Raises:
        BackendUnavailable: vamc is not on PATH.
        BuildError: vamc failed (message holds the last lines of its log), timed out, or did not
            write the compiled model files.
    """
    vamc = shutil.which("vamc")
    if vamc is None:
        raise BackendUnavailable("vamc not found on PATH (install the Vastai compiler or use "
                                 "--backend onnxruntime)")
    yaml_path = Path(yaml_path).resolve()
    name, deploy_dir = _read_build_yaml(yaml_path)
    log.info("running %s compile %s (log: %s)", vamc, yaml_path, log_path)
    code, tail = _run_logged([vamc, "compile", str(yaml_path)], yaml_path.parent, timeout_s,
                             Path(log_path))
    if code != 0:
        raise BuildError(f"vamc compile failed with exit code {code} (log: {log_path}); last lines:\n"
                         + "\n".join(tail))
    if find_model_prefix(deploy_dir) is None:
        raise BuildError(f"vamc compile exited 0 but {deploy_dir} does not hold the compiled model "
                         f"({MODEL_PREFIX}.so, {MODEL_PREFIX}.json, {MODEL_PREFIX}.params)")
    log.info("vamc compiled %s into %s", name, deploy_dir)
    return deploy_dir


def _import_vsx() -> Any:
    """Import vaststreamx, turning its absence into BackendUnavailable."""
    try:
        return importlib.import_module("vaststreamx")
    except ImportError as exc:
        raise BackendUnavailable(f"vaststreamx is not importable ({exc}); install the Vastai "
                                 "VastStreamX SDK or use --backend onnxruntime") from exc


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
        raise BuildError(f"row '{built.row}': no VACC model was compiled (build with --backend vacc first)")
    return VaccSession(built.vacc_dir, built.vdsp_json, built.input_shape,
                       device_id=options.device_id, batch_size=options.batch_size)


class VaccBackend(Backend):
    """The Vastai VACC accelerator: the vamc-compiled fp16/int8 model through vaststreamx."""

    name = "vacc"
    short = "vacc"
    summary = "Vastai VACC card (vamc build, vaststreamx)"
    artifact = "vamc"
    precisions = ("fp16", "int8")

    def unavailable_reason(self) -> str | None:
        ok, reason = vacc_available()
        return None if ok else reason

    def open(self, built: BuiltModel, options: SessionOptions = SessionOptions()) -> VaccSession:
        return open_session(built, options)
