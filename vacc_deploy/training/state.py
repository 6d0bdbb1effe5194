"""Training state and weight files: the resumable state (atomic ``torch.save``), official-layout
checkpoints, and fp16 safetensors for house weights.

- ``state.pt``: ``{"format", "row", "step", "elapsed_s", "model", "optimizer", "numpy_rng", "torch_rng",
  "history"}``; written to a temporary file and renamed, so a crash never leaves half a state.
- ``checkpoint.pt``: the model's ``state_dict()`` (float32, official key layout): what
  :func:`vacc_deploy.models.create_model` loads strictly.
- ``*.safetensors``: the same keys as float16 (house weights); loaded back as float32.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from vacc_deploy import artifacts
from vacc_deploy.errors import WeightsError
from vacc_deploy.models import load_safetensors

__all__ = ["save_torch", "cpu_state_dict", "save_state", "load_state", "save_fp16_safetensors", "load_safetensors"]

STATE_FORMAT = 1


def save_torch(path: Path, obj: Any) -> None:
    """``torch.save`` to ``path`` atomically (temporary file + rename)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    artifacts.atomic_write_bytes(Path(path), buf.getvalue())


def cpu_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state_dict as detached CPU float tensors, in its own key order."""
    return {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}


def save_state(path: Path, row: str, step: int, elapsed_s: float, model: torch.nn.Module,
               optimizer: torch.optim.Optimizer, numpy_rng: dict[str, Any], history: list[dict[str, Any]]
               ) -> None:
    """Write the resumable training state (see module docstring) atomically."""
    save_torch(path, {"format": STATE_FORMAT, "row": row, "step": step, "elapsed_s": elapsed_s,
                      "model": cpu_state_dict(model), "optimizer": optimizer.state_dict(),
                      "numpy_rng": numpy_rng, "torch_rng": torch.get_rng_state(), "history": history})


def load_state(path: Path, row: str) -> dict[str, Any]:
    """Read a training state written by :func:`save_state` for ``row``.

    Raises WeightsError when the file is unreadable, of another format, or of another row.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # corrupt or truncated file
        raise WeightsError(f"{path}: cannot read training state ({str(exc)[:200]})") from exc
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise WeightsError(f"{path}: not a training state of format {STATE_FORMAT}")
    if state.get("row") != row:
        raise WeightsError(f"{path}: training state of row '{state.get('row')}', not '{row}'")
    return state


def save_fp16_safetensors(path: Path, state: Mapping[str, torch.Tensor], metadata: dict[str, str] | None = None
                          ) -> None:
    """Write a state dict as float16 safetensors (non-float entries kept as they are), atomically."""
    from safetensors.torch import save

    half = {k: (v.detach().to("cpu").half() if v.is_floating_point() else v.detach().to("cpu")).contiguous()
            for k, v in state.items()}
    artifacts.atomic_write_bytes(Path(path), save(half, metadata=metadata))
