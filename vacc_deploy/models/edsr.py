"""EDSR as in the official EDSR-PyTorch (sanghyun-son/EDSR-PyTorch ``src/model/edsr.py`` +
``common.py``), class ``EDSR``.

Input: NCHW float32 RGB in [0, rgb_range] (255 for the official checkpoints). Output: NCHW RGB in
the same range (not clamped), H*scale x W*scale.

The mean shifts ``sub_mean``/``add_mean`` are 1x1 convolutions whose weight and bias are ordinary
state_dict entries (frozen in the official code) and are always taken from the loaded weights.
Graph: x = sub_mean(x); h = head(x); r = body(h) + h; y = add_mean(tail(r)), where each residual
block computes ``conv(relu(conv(x))) * res_scale + x``, ``body`` ends with an extra conv and
``tail`` = pixel-shuffle upsampler (``tail.0``) then a conv (``tail.1``).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from vacc_deploy.models.common import conv3x3, convert_checkpoint, upsample_layers
from vacc_deploy.spec import ModelSpec

__all__ = ["Params", "spec", "build", "convert_checkpoint", "EDSR"]

#: DIV2K RGB mean of the official MeanShift (used only for the initial, pre-load values).
DIV2K_MEAN = (0.4488, 0.4371, 0.4040)


class Params(BaseModel):
    """Constructor parameters of the official EDSR (``n_colors`` is fixed to 3)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_resblocks: int = Field(16, gt=0)
    n_feats: int = Field(64, gt=0)
    res_scale: float = Field(1.0, gt=0)
    scale: Literal[2, 3, 4] = 2
    rgb_range: float = Field(255.0, gt=0)


def spec(params: Params) -> ModelSpec:
    """RGB in [0, rgb_range], any input size, outputs rounded to uint8."""
    return ModelSpec(scale=params.scale, channel_order="RGB", value_range=float(params.rgb_range),
                     size_multiple=1, pad_mode="edge", output_conversion="round")


def _mean_shift(rgb_range: float, sign: float) -> nn.Conv2d:
    """A 1x1 conv initialised to ``x + sign * rgb_range * mean`` (overwritten by the weights)."""
    conv = nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        conv.bias.copy_(sign * rgb_range * torch.tensor(DIV2K_MEAN))
    conv.requires_grad_(False)
    return conv


class ResBlock(nn.Module):
    """``body = [conv, ReLU, conv]``; returns ``body(x) * res_scale + x`` (N, C, H, W)."""

    def __init__(self, n_feats: int, res_scale: float) -> None:
        super().__init__()
        self.body = nn.Sequential(conv3x3(n_feats, n_feats), nn.ReLU(), conv3x3(n_feats, n_feats))
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.body(x)
        if self.res_scale != 1.0:  # skipping a multiply by 1 is exact and keeps the graph lean
            res = res * self.res_scale
        return res + x


class EDSR(nn.Module):
    """Official EDSR with its parameter names (``sub_mean``, ``add_mean``, ``head``, ``body``, ``tail``)."""

    def __init__(self, p: Params) -> None:
        super().__init__()
        self.sub_mean = _mean_shift(p.rgb_range, -1.0)
        self.add_mean = _mean_shift(p.rgb_range, 1.0)
        self.head = nn.Sequential(conv3x3(3, p.n_feats))
        blocks: list[nn.Module] = [ResBlock(p.n_feats, p.res_scale) for _ in range(p.n_resblocks)]
        self.body = nn.Sequential(*blocks, conv3x3(p.n_feats, p.n_feats))
        self.tail = nn.Sequential(
            nn.Sequential(*upsample_layers(p.n_feats, p.scale)), conv3x3(p.n_feats, 3)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, rgb_range] -> (N, 3, H*scale, W*scale)."""
        h = self.head(self.sub_mean(x))
        r = self.body(h) + h
        return self.add_mean(self.tail(r))


def build(params: Params) -> nn.Module:
    """A fresh official EDSR (PyTorch default init; load weights afterwards)."""
    return EDSR(params)
