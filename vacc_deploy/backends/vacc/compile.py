"""Compiling with the vendor compiler ``vamc`` (looked up on PATH when a compile runs): the
compile runs in its own process group with its output streamed to a log file, killed whole on a
timeout or interrupt. Torch-free; imports no vendor package."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import threading
from collections import deque
from pathlib import Path
from typing import Any, Sequence

import yaml

from vacc_deploy.errors import BackendUnavailable, BuildError, UsageError

log = logging.getLogger(__name__)

MODEL_PREFIX = "mod"  # vamc writes deploy_weights/<name>/mod.{so,json,params}
MODEL_SUFFIXES = (".so", ".json", ".params")
LOG_TAIL_LINES = 20


def vamc_found() -> str | None:
    """The path of ``vamc`` on PATH, or None."""
    return shutil.which("vamc")


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
        except subprocess.TimeoutExpired as exc:
            _kill_group(proc)
            pump.join(timeout=5)
            raise BuildError(f"vamc compile timed out after {timeout_s:g} s and was killed "
                             f"(log: {log_path})") from exc
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
        raise BackendUnavailable("vamc not found on PATH (install the Vastai compiler, or build for another "
                                 "backend)")
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


