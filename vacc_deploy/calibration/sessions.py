"""ONNX Runtime sessions of the calibration segments (:mod:`vacc_deploy.calibration.collect`): their
options (graph optimization level, no spinning), the process-wide arena they share, and handing freed
memory back to the system once they are open. Which optimization level, and why, is stated and
measured in :mod:`~vacc_deploy.calibration.collect`."""

from __future__ import annotations

import logging

import onnx

from vacc_deploy.errors import BuildError

log = logging.getLogger(__name__)

_ENV_ARENA: list[bool] = []


def _session_options(exact: bool = False):  # -> onnxruntime.SessionOptions
    """ORT_ENABLE_ALL, or ORT_ENABLE_EXTENDED when ``exact`` (values bit-identical to no optimization;
    see :mod:`vacc_deploy.calibration.collect`), no spinning threads, and the process-wide arena shared by every segment's
    session."""
    import onnxruntime as ort

    if not _ENV_ARENA:
        info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        try:  # arena_extend_strategy 1 (kSameAsRequested): no power-of-two overshoot
            ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, 1, -1, -1))
            _ENV_ARENA.append(True)
        except Exception as exc:  # registered already by someone else, or unsupported
            log.debug("shared ORT arena not registered: %s", exc)
            _ENV_ARENA.append(False)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    level = ort.GraphOptimizationLevel
    opts.graph_optimization_level = level.ORT_ENABLE_EXTENDED if exact else level.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if _ENV_ARENA[0]:
        opts.add_session_config_entry("session.use_env_allocators", "1")
    else:
        opts.enable_cpu_mem_arena = False
    return opts


def segment_session(model: onnx.ModelProto, exact: bool = False):  # -> onnxruntime.InferenceSession
    """An ORT session of one calibration segment (:func:`_session_options`); BuildError if ORT refuses it."""
    import onnxruntime as ort

    try:
        return ort.InferenceSession(model.SerializeToString(), _session_options(exact),
                                    providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise BuildError(f"onnxruntime cannot load a calibration segment: {exc}") from exc


def release_freed_memory() -> None:
    """Hand memory the process has freed back to the system (glibc ``malloc_trim``; a no-op where
    there is none). Loading the model and opening the sessions frees several hundred MB that glibc
    would otherwise keep: on edsr_x2 (36 sessions, ORT_ENABLE_ALL) resident memory fell from 899 to
    411 MB, and the peak during calibration falls with it."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # not glibc
        pass
