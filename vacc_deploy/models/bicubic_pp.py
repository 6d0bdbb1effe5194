"""Bicubic++ (Bilecen & Ayazoglu 2023), aselsan-research-imaging-team/bicubic-plusplus
``models/SR_models.py`` class ``Bicubic_plus_plus``.

Input: NCHW float32 **BGR** in [0, 1] with even H and W (``conv0`` has stride 2).
Output: NCHW BGR, same range (not clamped), H*scale x W*scale. No biases anywhere.
Graph: x0 = act(conv0(x)); x1 = act(conv1(x0)); x2 = act(conv2(x1)) + x0;
y = PixelShuffle(2*scale)(conv_out(x2)), act = LeakyReLU(0.1).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict
from torch import nn

from vacc_deploy.models.common import conv3x3, convert_checkpoint
from vacc_deploy.spec import ModelSpec

__all__ = ["Params", "spec", "build", "convert_checkpoint", "BicubicPlusPlus"]

_SLOPE = 0.1
_FEATS = 32


class Params(BaseModel):
    """Constructor parameters (``sr_rate`` upstream is ``scale`` here)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scale: Literal[2, 3, 4] = 3


def spec(params: Params) -> ModelSpec:
    """BGR, [0, 1], H and W even (edge-padded when odd), outputs rounded to uint8."""
    return ModelSpec(scale=params.scale, channel_order="BGR", value_range=1.0, size_multiple=2,
                     pad_mode="edge", output_conversion="round", y_conversion="round")


class BicubicPlusPlus(nn.Module):
    """Bicubic++ with the official parameter names (``conv0``, ``conv1``, ``conv2``, ``conv_out``)."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.conv0 = conv3x3(3, _FEATS, bias=False, stride=2)
        self.conv1 = conv3x3(_FEATS, _FEATS, bias=False)
        self.conv2 = conv3x3(_FEATS, _FEATS, bias=False)
        self.conv_out = conv3x3(_FEATS, (2 * scale) ** 2 * 3, bias=False)
        self.depth_to_space = nn.PixelShuffle(2 * scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) with H, W even -> (N, 3, H*scale, W*scale)."""
        x0 = F.leaky_relu(self.conv0(x), _SLOPE)
        x1 = F.leaky_relu(self.conv1(x0), _SLOPE)
        x2 = F.leaky_relu(self.conv2(x1), _SLOPE) + x0
        return self.depth_to_space(self.conv_out(x2))


def build(params: Params) -> nn.Module:
    """A fresh Bicubic++ network (PyTorch default init; load weights afterwards)."""
    return BicubicPlusPlus(params.scale)
