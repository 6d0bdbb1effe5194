"""Backends that run a built model behind one session interface, and their registry. Torch-free;
nothing of a vendor SDK (nor torch) is imported here or by the backend modules at import time.

:data:`BACKENDS` maps a backend name to its :class:`~vacc_deploy.backends.base.Backend` object (a
plain dict). The CLI's backend choices, the report labels and the build stage's choice of artifact
all come from it. Adding a backend = one module + one line here. ``"auto"`` is resolved here
(:func:`resolve`) and nowhere else.
"""

from __future__ import annotations

from vacc_deploy.backends.base import Artifact, Backend, BuildInputs, BuiltModel, Session, SessionOptions
from vacc_deploy.backends.ort.onnx_backend import OnnxBackend
from vacc_deploy.backends.ort.options import BuildOptions
from vacc_deploy.backends.openvino import OpenVinoBackend
from vacc_deploy.backends.ort.session import OrtBackend
from vacc_deploy.backends.pytorch import TorchBackend
from vacc_deploy.backends.vacc.session import VaccBackend
from vacc_deploy.errors import BackendUnavailable, UsageError

__all__ = ["AUTO", "AUTO_ORDER", "Artifact", "BACKENDS", "Backend", "BuildInputs", "BuildOptions", "BuiltModel",
           "DEFAULT_BACKEND", "OnnxBackend", "Session",
           "SessionOptions", "backend_names", "get_backend", "open_session", "resolve", "short_label"]

BACKENDS: dict[str, Backend] = {
    TorchBackend.name: TorchBackend(),
    OrtBackend.name: OrtBackend(),
    VaccBackend.name: VaccBackend(),
    OpenVinoBackend.name: OpenVinoBackend(),
}

#: The backend name that means "the best one available here".
AUTO = "auto"
#: What ``auto`` tries, in order: the accelerator, else the default CPU runtime.
AUTO_ORDER: tuple[str, ...] = (VaccBackend.name, OrtBackend.name)
#: The backend a command uses when none is named.
DEFAULT_BACKEND = OrtBackend.name


def get_backend(name: str) -> Backend:
    """The registered backend ``name``. Raises UsageError for an unknown name (``auto``: use
    :func:`resolve`)."""
    try:
        return BACKENDS[name]
    except KeyError as exc:
        raise UsageError(f"unknown backend '{name}' (known: {', '.join(BACKENDS)})") from exc


def backend_names(*, artifact: Artifact | None = None, precision: str | None = None) -> tuple[str, ...]:
    """Registered names, in registry order; only those building ``artifact`` / running ``precision``
    when given."""
    return tuple(n for n, b in BACKENDS.items()
                 if (artifact is None or b.artifact == artifact)
                 and (precision is None or precision in b.precisions))


def resolve(name: str) -> tuple[Backend, str]:
    """The backend ``name`` stands for and a one-line reason. ``auto`` picks the first available
    backend of :data:`AUTO_ORDER`; the reason says why the ones before it were passed over."""
    if name != AUTO:
        return get_backend(name), "named"
    passed: list[str] = []
    for candidate in AUTO_ORDER:
        backend = get_backend(candidate)
        reason = backend.unavailable_reason()
        if reason is None:
            return backend, "; ".join(passed) or f"{candidate} is available"
        passed.append(reason)
    raise BackendUnavailable(f"no backend of {', '.join(AUTO_ORDER)} is available: {'; '.join(passed)}")


def short_label(name: str) -> str:
    """The report label of backend ``name`` (the name itself when it is not registered)."""
    backend = BACKENDS.get(name)
    return backend.short if backend is not None else name


def open_session(name: str, built: BuiltModel, options: SessionOptions = SessionOptions()) -> Session:
    """Open a session of backend ``name`` on ``built`` (see :meth:`Backend.open`)."""
    return get_backend(name).open(built, options)
