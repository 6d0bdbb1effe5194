"""EDSR as in BasicSR (XPixelGroup/BasicSR ``basicsr/archs/edsr_arch.py``, v1.4.2) and its
VastModelZOO variant (``edsr_arch_modify.py``), which has no upsampler when ``scale == 1``
(the x1 deblurring model).

Input: NCHW float32 RGB in [0, 1]. Output: NCHW RGB in [0, 1] (not clamped), H*scale x W*scale.
Graph: x = (x - rgb_mean) * img_range; f = conv_first(x); r = conv_after_body(body(f)) + f;
y = conv_last(upsample(r)) (no ``upsample`` for scale 1); y = y / img_range + rgb_mean.
``rgb_mean`` is a constant (a non-persistent buffer), not part of the state_dict. The VastModelZOO
``QuantStub``/``FloatFunctional`` are identity in float mode and are left out.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from vacc_deploy.models.common import conv3x3, convert_checkpoint, upsample_layers
from vacc_deploy.spec import ModelSpec

__all__ = ["Params", "spec", "build", "convert_checkpoint", "EDSRBasicSR"]


class Params(BaseModel):
    """Constructor parameters (``upscale`` upstream is ``scale`` here)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_in_ch: int = 3
    num_out_ch: int = 3
    num_feat: int = Field(64, gt=0)
    num_block: int = Field(16, gt=0)
    scale: Literal[1, 2, 3, 4] = 4
    res_scale: float = Field(1.0, gt=0)
    img_range: float = Field(255.0, gt=0)
    rgb_mean: tuple[float, float, float] = (0.4488, 0.4371, 0.4040)

    @model_validator(mode="after")
    def _three_channels(self) -> "Params":
        if self.num_in_ch != 3 or self.num_out_ch != 3:
            raise ValueError("num_in_ch and num_out_ch must be 3 (rgb_mean has 3 channels)")
        return self


def spec(params: Params) -> ModelSpec:
    """RGB in [0, 1], any input size, outputs rounded to uint8."""
    return ModelSpec(scale=params.scale, channel_order="RGB", value_range=1.0, size_multiple=1,
                     pad_mode="edge", output_conversion="round")


class ResidualBlockNoBN(nn.Module):
    """``x + conv2(relu(conv1(x))) * res_scale`` (N, C, H, W)."""

    def __init__(self, num_feat: int, res_scale: float) -> None:
        super().__init__()
        self.conv1 = conv3x3(num_feat, num_feat)
        self.conv2 = conv3x3(num_feat, num_feat)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.conv2(torch.relu(self.conv1(x)))
        if self.res_scale != 1.0:  # skipping a multiply by 1 is exact and keeps the graph lean
            res = res * self.res_scale
        return x + res


class EDSRBasicSR(nn.Module):
    """BasicSR EDSR with its parameter names (``conv_first``, ``body.N.conv1``, ``upsample.0``...)."""

    mean: torch.Tensor

    def __init__(self, p: Params) -> None:
        super().__init__()
        self.scale = p.scale
        self.img_range = float(p.img_range)
        self.register_buffer("mean", torch.tensor(p.rgb_mean).view(1, 3, 1, 1), persistent=False)
        self.conv_first = conv3x3(p.num_in_ch, p.num_feat)
        self.body = nn.Sequential(*[ResidualBlockNoBN(p.num_feat, p.res_scale)
                                    for _ in range(p.num_block)])
        self.conv_after_body = conv3x3(p.num_feat, p.num_feat)
        if p.scale > 1:
            self.upsample = nn.Sequential(*upsample_layers(p.num_feat, p.scale))
        self.conv_last = conv3x3(p.num_feat, p.num_out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N, 3, H*scale, W*scale)."""
        mean = self.mean.to(x.dtype)
        f = self.conv_first((x - mean) * self.img_range)
        r = self.conv_after_body(self.body(f)) + f
        if self.scale > 1:
            r = self.upsample(r)
        return self.conv_last(r) / self.img_range + mean


def build(params: Params) -> nn.Module:
    """A fresh BasicSR-style EDSR (PyTorch default init; load weights afterwards)."""
    return EDSRBasicSR(params)
