"""Model building: architecture families, official checkpoints, synthetic weights.

This package imports torch. The rest of the tool reaches it only to build and export models.

A family module (``vacc_deploy/models/<family>.py``) provides:

- ``Params``: a pydantic model (unknown keys rejected) of the constructor parameters that a row's
  ``params:`` mapping holds;
- ``spec(params) -> ModelSpec``: the conventions of :mod:`vacc_deploy.spec`, declared once here;
- ``build(params) -> torch.nn.Module``: a fresh module with the official parameter names, whose
  ``forward(x)`` takes and returns NCHW float32 tensors in the official convention;
- ``convert_checkpoint(obj, fmt) -> dict``: the documented mapping from a checkpoint file's object
  to the official state_dict (identity for plain state dicts; ``basicsr`` unwraps ``params``).

Adding a family = one module + one line in :data:`FAMILIES`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, Union

import torch
from pydantic import BaseModel, ValidationError

from vacc_deploy.config import RowConfig, load_row
from vacc_deploy.errors import ConfigError, WeightsError
from vacc_deploy.models import bicubic_pp, edsr, edsr_basicsr, lesrcnn, rrdbnet, srvgg
from vacc_deploy.models.synthetic import synthetic_state_dict
from vacc_deploy.spec import ModelSpec

class Family(Protocol):
    """What a family module provides (see the package docstring); each module of :data:`FAMILIES`
    satisfies it by its module-level names."""

    @property
    def Params(self) -> type[BaseModel]: ...  # noqa: N802  (the family module's class of that name)

    def spec(self, params: Any) -> ModelSpec: ...

    def build(self, params: Any) -> torch.nn.Module: ...

    def convert_checkpoint(self, obj: Any, fmt: str) -> dict[str, torch.Tensor]: ...


FAMILIES: dict[str, Family] = {
    "rrdbnet": rrdbnet,
    "bicubic_pp": bicubic_pp,
    "edsr": edsr,
    "edsr_basicsr": edsr_basicsr,
    "lesrcnn": lesrcnn,
    "srvgg": srvgg,
}

WeightsArg = Union[None, str, Path, Mapping[str, torch.Tensor]]


def family_of(config: RowConfig) -> Family:
    """The family module of a row. Raises ConfigError for an unknown ``arch``."""
    try:
        return FAMILIES[config.arch]
    except KeyError as exc:
        raise ConfigError(
            f"row '{config.name}': key 'arch': unknown architecture '{config.arch}' "
            f"(known: {', '.join(sorted(FAMILIES))})"
        ) from exc


def row_params(config: RowConfig) -> Any:
    """Validated constructor parameters of a row (the family's ``Params``)."""
    family = family_of(config)
    try:
        return family.Params.model_validate(config.params)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        key = f"params.{loc}" if loc else "params"  # model-level validators give an empty loc
        msg = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise ConfigError(f"row '{config.name}': key '{key}': {msg}") from exc


def row_spec(config: RowConfig) -> ModelSpec:
    """The row's pre/post-processing conventions, as its family declares them."""
    return family_of(config).spec(row_params(config))


def load_checkpoint(path: Path, config: RowConfig) -> dict[str, torch.Tensor]:
    """Read a checkpoint file (CPU, ``weights_only``) and map it to the official state_dict.

    A ``.safetensors`` file (house weights: fp16) is read as a flat official-key state dict and
    its float entries are cast to float32.

    Raises WeightsError naming the file when it cannot be read (corrupt, truncated, not a checkpoint).
    """
    if Path(path).suffix == ".safetensors":
        return load_safetensors(Path(path))
    try:
        with warnings.catch_warnings():  # torch's warnings about odd pickles invite unsafe loading
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise WeightsError(f"{path}: cannot load checkpoint: {_unloadable_reason(exc)}") from exc
    fmt = config.weights.official.format if config.weights.official else "state_dict"
    return family_of(config).convert_checkpoint(obj, fmt)


def _unloadable_reason(exc: Exception) -> str:
    """Why ``torch.load`` refused a file, in one line. Never passes on torch's advice to load it
    unsafely (``weights_only=False`` runs arbitrary code from the file)."""
    text = str(exc).strip()
    if "weights_only" in text or "Weights only load failed" in text:
        return ("not a loadable PyTorch checkpoint (corrupt, truncated, or it holds Python objects other "
                "than tensors, which are never unpickled)")
    first = text.splitlines()[0][:160] if text else type(exc).__name__
    return f"not a loadable PyTorch checkpoint (corrupt or truncated: {first})"


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file; float entries come back as float32. WeightsError when unreadable."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: cannot load safetensors ({str(exc)[:200]})") from exc
    return {k: (v.float() if v.is_floating_point() else v) for k, v in tensors.items()}


def load_weights(module: torch.nn.Module, state: Mapping[str, torch.Tensor], origin: str) -> None:
    """``load_state_dict(strict=True)``, turning key/shape mismatches into one-line WeightsErrors."""
    try:
        torch.nn.Module.load_state_dict(module, dict(state), strict=True)
    except RuntimeError as exc:
        text = " ".join(str(exc).split())
        raise WeightsError(f"{origin}: does not match the architecture: {text[:300]}") from exc


def create_model(
    row: Union[str, Path, RowConfig],
    weights: WeightsArg = None,
) -> torch.nn.Module:
    """Build a row's network in eval mode, with weights.

    Args:
        row: a row name (``lesrcnn_x2``), a path to a row YAML, or a loaded :class:`RowConfig`.
        weights: ``None`` resolves the official checkpoint (``--weights`` path, ``VACC_DEPLOY_WEIGHTS``,
            cache, download; then the row's house weights; see :mod:`vacc_deploy.weights`);
            ``"official"`` the official checkpoint only; ``"house"`` the house weights (fp16
            safetensors in ``vacc_deploy/house_weights/``); ``"synthetic"`` builds synthetic-v1
            weights with the row's ``seed_base``/``std_factor``; a path loads that checkpoint; a
            mapping is taken as an official-key state dict.

    Returns:
        An eval-mode module whose ``forward(x)`` takes and returns NCHW float32 tensors in the
        official implementation's convention (see the row's :class:`ModelSpec`).

    Raises:
        UsageError/ConfigError for an unknown row or invalid config; WeightsError when weights cannot
        be found, verified or loaded strictly.
    """
    config = row if isinstance(row, RowConfig) else load_row(row)
    family = family_of(config)
    module = family.build(row_params(config))
    if isinstance(weights, Mapping):
        load_weights(module, weights, "state_dict")
    elif weights == "synthetic":
        syn = config.weights.synthetic
        load_weights(module, synthetic_state_dict(module, syn.seed_base, syn.std_factor), "synthetic-v1")
    else:
        from vacc_deploy.weights import resolve_weights

        path = resolve_weights(config, weights)
        load_weights(module, load_checkpoint(path, config), str(path))
    return module.eval()
