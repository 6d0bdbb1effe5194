"""Helpers shared by the family modules: a sub-pixel (pixel-shuffle) upsampler and checkpoint
unwrapping."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from vacc_deploy.errors import WeightsError

#: Keys under which training frameworks nest the state dict, tried in this order by ``state_dict``.
WRAPPER_KEYS: tuple[str, ...] = ("state_dict", "params", "params_ema", "model")
#: Keys tried, in this order, for BasicSR checkpoints (``params`` first, as BasicSR's own loader).
BASICSR_KEYS: tuple[str, ...] = ("params", "params_ema")
#: Keys tried, in this order, for Real-ESRGAN checkpoints (as Real-ESRGAN's ``RealESRGANer`` does).
REALESRGAN_KEYS: tuple[str, ...] = ("params_ema", "params")


def conv3x3(in_ch: int, out_ch: int, bias: bool = True, stride: int = 1) -> nn.Conv2d:
    """A 3x3 convolution with 'same' padding (for stride 1)."""
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=bias)


def upsample_layers(num_feat: int, scale: int, bias: bool = True) -> list[nn.Module]:
    """Layers of a sub-pixel upsampler: ``[conv3x3(C, r*r*C), PixelShuffle(r)]`` per stage.

    Scales 2, 4 and 8 use stages of r = 2; scale 3 uses one stage of r = 3. The layer indices are
    therefore 0, 2, ... for the convolutions, as in every official implementation used here.
    Input (N, C, H, W) -> output (N, C, H*scale, W*scale).
    """
    if scale in (2, 4, 8):
        stages = [2] * (scale.bit_length() - 1)
    elif scale == 3:
        stages = [3]
    else:
        raise ValueError(f"pixel-shuffle upsampler: unsupported scale {scale} (2, 3, 4 or 8)")
    layers: list[nn.Module] = []
    for r in stages:
        layers.append(conv3x3(num_feat, r * r * num_feat, bias=bias))
        layers.append(nn.PixelShuffle(r))
    return layers


def _is_tensor_mapping(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def _strip_module_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a ``module.`` prefix present on *every* key (checkpoints saved from DataParallel)."""
    if all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def convert_checkpoint(obj: Any, fmt: str, keys: tuple[str, ...] = BASICSR_KEYS) -> dict[str, torch.Tensor]:
    """Map a loaded checkpoint object to a flat ``{official key: tensor}`` dict.

    Rules:
      - ``state_dict``: a mapping of ``str -> Tensor`` is taken as is. Otherwise, when it is a mapping
        holding one of :data:`WRAPPER_KEYS` (tried in that order) whose value is such a mapping, that
        value is taken.
      - ``basicsr``: the first of ``keys`` present (default :data:`BASICSR_KEYS`: ``obj["params"]``,
        or ``obj["params_ema"]`` when there is no ``params``).
      - In both cases a ``module.`` prefix shared by every key is removed.

    Raises:
        WeightsError: the object is not (and does not wrap) a non-empty mapping of tensors, or the
            format is unknown.
    """
    if fmt == "state_dict":
        candidates = [obj] + [obj[k] for k in WRAPPER_KEYS if isinstance(obj, Mapping) and k in obj]
    elif fmt == "basicsr":
        candidates = [obj[k] for k in keys if isinstance(obj, Mapping) and k in obj]
        if not candidates:
            raise WeightsError(f"basicsr checkpoint has none of the entries {', '.join(map(repr, keys))}")
    else:
        raise WeightsError(f"unknown checkpoint format '{fmt}' (expected 'state_dict' or 'basicsr')")
    for cand in candidates:
        if _is_tensor_mapping(cand):
            return _strip_module_prefix(cand)
    raise WeightsError(
        f"checkpoint ({fmt}) is not a mapping of parameter names to tensors (got {type(obj).__name__})"
    )


def convert_realesrgan_checkpoint(obj: Any, fmt: str) -> dict[str, torch.Tensor]:
    """Like :func:`convert_checkpoint`, for families whose official files are Real-ESRGAN's.

    A mapping holding ``params_ema`` or ``params`` is unwrapped as Real-ESRGAN's inference does
    (``params_ema`` first, :data:`REALESRGAN_KEYS`), whatever ``fmt`` says; anything else goes
    through :func:`convert_checkpoint` with ``fmt``. Floating tensors (fp16 in converted files) are
    cast to float32. Raises WeightsError.
    """
    if isinstance(obj, Mapping) and any(k in obj for k in REALESRGAN_KEYS):
        state = convert_checkpoint(obj, "basicsr", keys=REALESRGAN_KEYS)
    else:
        state = convert_checkpoint(obj, fmt)
    return {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
