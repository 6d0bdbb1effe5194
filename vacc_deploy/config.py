"""Model-row configs: one YAML file per row in ``vacc_deploy/model_configs/``, validated by pydantic schemas
that reject unknown keys.

A row names its architecture family and constructor parameters, its default fixed input shape, the
checkpoints it can load (official address + sha256, house weights, synthetic-v1 rule) and its seed int8 calibration
method. Conventions (scale, channel order, value range, size multiple) are *not* in the YAML: each
family's model module declares them (see :mod:`vacc_deploy.spec`).

This module is torch-free.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vacc_deploy.errors import ConfigError, UsageError
from vacc_deploy.types import DEFAULT_EQUALIZE, DEFAULT_WEIGHT_ROUNDING, CalibMethod, WeightRounding

#: The shipped rows (package data: present in a checkout and in an installed wheel alike).
CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"
#: Where house weights live (package data, beside ``model_configs/``).
HOUSE_DIR = Path(__file__).resolve().parent / "house_weights"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """Where the official implementation lives (for provenance only)."""

    repo: str
    commit: str
    path: str
    cls: str


class OfficialWeights(_Strict):
    """An official checkpoint: file name, pinned hash and official download address.

    ``sha256`` is the full hex digest, or a prefix of at least 8 hex digits where upstream only
    publishes a prefix (torch.hub / BasicSR file-name convention), or None when nothing is pinned:
    then a download is refused and the user must place the file where the resolver looks.
    ``format`` says how the file's object maps to the official state_dict: ``state_dict`` (as is) or
    ``basicsr`` (a dict whose ``params`` entry is the state_dict).
    """

    file: str
    sha256: str | None
    url: str | None
    format: Literal["state_dict", "basicsr"] = "state_dict"
    license: str | None = None

    @field_validator("sha256")
    @classmethod
    def _hex(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[0-9a-f]{8,64}", v):
            raise ValueError("must be 8 to 64 lowercase hex digits (a sha256 or its prefix)")
        return v


class SyntheticWeights(_Strict):
    """The deterministic synthetic-v1 rule (see ``../shared/data/parity/README.md``)."""

    seed_base: int = 1000
    std_factor: float = 1.0


class HouseWeights(_Strict):
    """House weights: trained by this project (not the official checkpoint), stored in the repository
    as fp16 safetensors in ``vacc_deploy/house_weights/`` beside ``<file stem>.provenance.json``.

    ``file`` is a plain file name ending in ``.safetensors``; ``sha256`` its full hex digest (the
    file is verified before every use).
    """

    file: str
    sha256: str

    @field_validator("file")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+\.safetensors", v) or v.startswith("."):
            raise ValueError("must be a plain file name ending in .safetensors (no folders)")
        return v

    @field_validator("sha256")
    @classmethod
    def _hex(cls, v: str) -> str:
        if not re.fullmatch(r"[0-9a-f]{64}", v):
            raise ValueError("must be the full sha256: 64 lowercase hex digits")
        return v


class Weights(_Strict):
    official: OfficialWeights | None = None
    house: HouseWeights | None = None
    synthetic: SyntheticWeights = SyntheticWeights()


class Quantization(_Strict):
    """The row's int8 recipe: its seed calibration method (what the vendor table used), and the
    fp32 rewrites an ONNX Runtime-numerics build applies when the user names none: cross-layer
    channel equalization and the Conv weight rounding (a row whose int8 fidelity measurably gains
    from them says so, with the measurement beside it; the vacc numerics and self-calibrating
    backends never take them: they compute what the card computes from the export)."""

    method: CalibMethod = "percentile"
    equalize: bool = DEFAULT_EQUALIZE
    weight_rounding: WeightRounding = DEFAULT_WEIGHT_ROUNDING


class RowConfig(_Strict):
    """One model row. ``name`` defaults to the YAML file's stem."""

    name: str
    description: str
    arch: str
    params: dict[str, Any] = Field(default_factory=dict)
    input_shape: tuple[int, int, int, int]
    source: Source
    weights: Weights = Weights()
    quant: Quantization = Quantization()
    #: The fp32 (PSNR, SSIM) the row's paper publishes per benchmark set (standard protocol), e.g.
    #: ``{"Set5": (37.65, 0.9586)}``; empty when there is none (GAN-trained rows, house-only rows).
    paper: dict[str, tuple[float, float]] = Field(default_factory=dict)

    @property
    def reference_psnr(self) -> float | None:
        """The fp32 PSNR at which ``--target-drop`` judges a drop by default: the paper's Set5
        figure (which fp32 reproduces, docs/evaluation.md), else None (the validation images)."""
        return self.paper["Set5"][0] if "Set5" in self.paper else None

    @field_validator("input_shape")
    @classmethod
    def _shape(cls, v: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        if v[0] != 1 or v[1] != 3 or v[2] <= 0 or v[3] <= 0:
            raise ValueError("must be [1, 3, H, W] with positive H and W")
        return v


def available_rows() -> list[str]:
    """Names of the rows shipped in ``vacc_deploy/model_configs/``, sorted."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def _format_validation(path: Path, err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "<root>"
    if not loc.isprintable():  # a key holding a newline or control character: keep the message one line
        loc = repr(loc)[1:-1]
    msg = " ".join(first["msg"].split())
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    return f"{path}: key '{loc}': {msg}"


def load_row(row: str | Path) -> RowConfig:
    """Load and validate a row by name (``lesrcnn_x2``) or by path to a YAML file.

    Raises:
        UsageError: the row name is unknown.
        ConfigError: the file is not valid YAML or does not match the schema (unknown key, wrong type).
    """
    text_row = str(row)
    path = Path(text_row)
    if not (text_row.endswith((".yaml", ".yml")) or path.is_file()):
        path = CONFIG_DIR / f"{text_row}.yaml"
        if not path.is_file():
            rows = ", ".join(available_rows())
            raise UsageError(f"unknown row '{text_row}' (known rows: {rows}; or give a path to a YAML file)")
    elif not path.is_file():
        raise UsageError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, ValueError, RecursionError) as exc:  # ValueError: bad UTF-8, an impossible date
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"{path}: not valid YAML: {first[:200]}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror or exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    data.setdefault("name", path.stem)
    try:
        return RowConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation(path, exc)) from exc
    except RecursionError as exc:  # a self-referencing YAML anchor
        raise ConfigError(f"{path}: a value refers to itself (recursive YAML anchor)") from exc


def parse_shape(text: str) -> tuple[int, int, int, int]:
    """Parse ``1x3xHxW`` into a tuple. Raises UsageError on anything else."""
    m = re.fullmatch(r"\s*(\d+)x(\d+)x(\d+)x(\d+)\s*", text)
    if not m:
        raise UsageError(f"'{text}': expected NxCxHxW, e.g. 1x3x128x128", option="shape")
    shape = tuple(int(g) for g in m.groups())
    if shape[0] != 1 or shape[1] != 3:
        raise UsageError(f"'{text}': batch must be 1 and channels 3", option="shape")
    if shape[2] <= 0 or shape[3] <= 0:
        raise UsageError(f"'{text}': H and W must be positive", option="shape")
    return shape  # type: ignore[return-value]
