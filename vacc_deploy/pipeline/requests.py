"""What a command asks the pipeline for: which model (weights, shape, backend, build options) and
where its calibration set comes from. Torch-free."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vacc_deploy.backends import DEFAULT_BACKEND, BuildOptions
from vacc_deploy.config import RowConfig
from vacc_deploy.errors import UsageError
from vacc_deploy.types import (
    CALIB_METHODS,
    DEFAULT_CALIB_MODE,
    DEFAULT_CALIB_NUM,
    DEFAULT_CALIB_SEED,
    DEFAULT_DEGRADATION,
    DEFAULT_OPSET,
    PRECISIONS,
    CalibMethod,
    CalibMode,
    Degradation,
    Precision,
)


@dataclass(frozen=True)
class CalibRequest:
    """Where the calibration set comes from and how it is made (see :mod:`vacc_deploy.calibration.dataset`)."""

    images: Path | None = None
    num: int = DEFAULT_CALIB_NUM
    seed: int = DEFAULT_CALIB_SEED
    mode: CalibMode = DEFAULT_CALIB_MODE
    degrade: Degradation = DEFAULT_DEGRADATION


@dataclass(frozen=True)
class ModelRequest:
    """Which model a command wants: weights, fixed shape, backend, build and calibration options.
    ``force``: redo the command's last stage (the build; for calib, the set) even when cached."""

    weights: str | None = None
    shape: tuple[int, int, int, int] | None = None
    opset: int = DEFAULT_OPSET
    backend: str = DEFAULT_BACKEND
    build: BuildOptions = field(default_factory=BuildOptions)
    calib: CalibRequest = field(default_factory=CalibRequest)
    force: bool = False

    def with_precision(self, precision: str, quant: str | None = None, numerics: str | None = None) -> "ModelRequest":
        """The same request for another precision / calibration method (/ int8 numerics, when given)."""
        extra = {"numerics": numerics} if numerics else {}
        return dataclasses.replace(self, build=dataclasses.replace(self.build, precision=precision, quant=quant,
                                                                   **extra))

    def with_build(self, **changes: object) -> "ModelRequest":
        """The same request with some build options changed."""
        return dataclasses.replace(self, build=dataclasses.replace(self.build, **changes))


def variants(config: RowConfig, precisions: Sequence[str], quants: Sequence[str] | None = None, *,
             with_fp32: bool = True) -> list[tuple[Precision, CalibMethod | None]]:
    """The (precision, int8 method) builds a command asks for, in the order fp32, fp16, int8 (one
    int8 build per method; default method: the row's). ``with_fp32`` puts fp32 first even when not
    asked (eval and the pipeline need it as the fidelity reference). Raises UsageError (options
    ``precisions``, ``quant``) for an unknown precision or int8 method."""
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise UsageError(f"unknown precision '{bad[0]}' (expected {', '.join(PRECISIONS)})", option="precisions")
    methods = tuple(quants) if quants else (config.quant.method,)
    odd = [m for m in methods if m not in CALIB_METHODS]
    if odd:
        raise UsageError(f"unknown int8 calibration method '{odd[0]}' (expected {', '.join(CALIB_METHODS)})",
                         option="quant")
    wanted = set(precisions) | ({"fp32"} if with_fp32 else set())
    return [(p, m) for p in PRECISIONS if p in wanted for m in (methods if p == "int8" else (None,))]  # type: ignore[misc]
