"""LESRCNN (Tian et al. 2020), hellloxiaotian/LESRCNN ``x{2,3,4}/model/lesrcnn.py`` class ``Net``
(``group=1``, ``multi_scale`` off).

Input: NCHW float32 RGB in [0, 1]. Output: NCHW RGB in [0, 1] (not clamped; the official test code
truncates: ``mul(255).clamp(0, 255).byte()``), H*scale x W*scale.

The official forward applies in-place ReLUs to tensors it reuses, so the effective graph is
(``c_k`` = 3x3 conv + ReLU, ``p_k`` = 1x1 conv, no biases)::

    r0 = relu(conv1(sub_mean(x)))
    r_k = relu(r_{k-1} + p_k(c_k(r_{k-1})))          k = 1..8 (conv2/conv3 ... conv16/conv17)
    u = relu(up(r8) + up(r0))                          one upsampler, shared weights
    y = add_mean(conv18(conv17_4(...conv17_1(u))))     conv17_* = 3x3 conv + ReLU

which is what :class:`LESRCNN` computes, with out-of-place ops only.
"""

from __future__ import annotations

from typing import Literal, Optional

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from vacc_deploy.models.common import conv3x3, convert_checkpoint, upsample_layers
from vacc_deploy.spec import ModelSpec

__all__ = ["Params", "spec", "build", "convert_checkpoint", "LESRCNN"]

_FEATS = 64
_PAIRS = 8  # (3x3 conv + ReLU, 1x1 conv) pairs: conv2/conv3 ... conv16/conv17
_TAIL = 4  # conv17_1 .. conv17_4
_MEAN = (0.4488, 0.4371, 0.4040)


class Params(BaseModel):
    """Constructor parameters of LESRCNN."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scale: Literal[2, 3, 4] = 2


def spec(params: Params) -> ModelSpec:
    """RGB in [0, 1], any input size, outputs truncated to uint8 as the official test code does."""
    return ModelSpec(scale=params.scale, channel_order="RGB", value_range=1.0, size_multiple=1,
                     pad_mode="edge", output_conversion="truncate",
                     y_conversion="round")


class MeanShift(nn.Module):
    """The official frozen 1x1 conv ``shifter`` (initialised to ``x + sign * mean``)."""

    def __init__(self, sign: float) -> None:
        super().__init__()
        self.shifter = nn.Conv2d(3, 3, 1)
        with torch.no_grad():
            self.shifter.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.shifter.bias.copy_(sign * torch.tensor(_MEAN))
        self.shifter.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shifter(x)


class UpsampleBlock(nn.Module):
    """Holds the single-scale upsampler as ``up.body`` (official key ``upsample.up.body.N``)."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.up = nn.Module()
        self.up.body = nn.Sequential(*upsample_layers(_FEATS, scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up.body(x)


class LESRCNN(nn.Module):
    """LESRCNN with the official parameter names and state_dict order."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.sub_mean = MeanShift(-1.0)
        self.add_mean = MeanShift(1.0)
        self.conv1 = nn.Sequential(conv3x3(3, _FEATS, bias=False))
        for k in range(_PAIRS):
            setattr(self, f"conv{2 * k + 2}", nn.Sequential(conv3x3(_FEATS, _FEATS, False), nn.ReLU()))
            setattr(self, f"conv{2 * k + 3}", nn.Sequential(nn.Conv2d(_FEATS, _FEATS, 1, bias=False)))
        for k in range(1, _TAIL + 1):
            setattr(self, f"conv17_{k}", nn.Sequential(conv3x3(_FEATS, _FEATS, False), nn.ReLU()))
        self.conv18 = nn.Sequential(conv3x3(_FEATS, 3, bias=False))
        self.upsample = UpsampleBlock(scale)

    def forward(self, x: torch.Tensor, scale: Optional[int] = None) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N, 3, H*scale, W*scale). ``scale`` is accepted and ignored
        (the official signature is ``forward(x, scale)``; the scale is fixed at construction)."""
        r0 = torch.relu(self.conv1(self.sub_mean(x)))
        r = r0
        for k in range(_PAIRS):
            c = getattr(self, f"conv{2 * k + 2}")
            p = getattr(self, f"conv{2 * k + 3}")
            r = torch.relu(r + p(c(r)))
        u = torch.relu(self.upsample(r) + self.upsample(r0))
        for k in range(1, _TAIL + 1):
            u = getattr(self, f"conv17_{k}")(u)
        return self.add_mean(self.conv18(u))


def build(params: Params) -> nn.Module:
    """A fresh LESRCNN (PyTorch default init; load weights afterwards)."""
    return LESRCNN(params.scale)
