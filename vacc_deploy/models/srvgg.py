"""SRVGGNetCompact, xinntao/Real-ESRGAN ``realesrgan/archs/srvgg_arch.py`` (realesr-animevideov3,
realesr-general-x4v3).

Input: NCHW float32 RGB in [0, 1]. Output: NCHW RGB, same range (not clamped), H*upscale x W*upscale.
The network is a plain chain ``body``: conv 3x3 (in -> F), activation, then ``num_conv`` times
(conv 3x3 F -> F, activation), then conv 3x3 F -> out*upscale^2; the result is pixel-shuffled
(ONNX DepthToSpace, CRD) and the nearest-neighbour upsampled input is added, so the convolutions
learn a residual. Activations: PReLU with one slope per channel (``body.{1,3,...}.weight``), ReLU
or LeakyReLU(0.1) (no parameters).

Parameter names are the official ones (``body.0.weight`` ... ``body.{2*num_conv+2}.bias``);
checkpoints are Real-ESRGAN's ``{"params": ...}`` files (``params_ema`` preferred when present).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from vacc_deploy.models.common import conv3x3
from vacc_deploy.models.common import convert_realesrgan_checkpoint as convert_checkpoint
from vacc_deploy.spec import ModelSpec

__all__ = ["Params", "spec", "build", "convert_checkpoint", "SRVGGNetCompact"]

_LEAKY_SLOPE = 0.1  # the official 'leakyrelu' activation


class Params(BaseModel):
    """Constructor parameters of SRVGGNetCompact (the official names)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_in_ch: int = Field(3, gt=0)
    num_out_ch: int = Field(3, gt=0)
    num_feat: int = Field(64, gt=0)
    num_conv: int = Field(16, ge=0)
    upscale: Literal[2, 3, 4] = 4
    act_type: Literal["prelu", "relu", "leakyrelu"] = "prelu"


def spec(params: Params) -> ModelSpec:
    """RGB, [0, 1], any input size, outputs clamped and rounded to uint8 (Real-ESRGAN's inference)."""
    return ModelSpec(scale=params.upscale, channel_order="RGB", value_range=1.0, size_multiple=1,
                     pad_mode="edge", output_conversion="round")


def _activation(act_type: str, num_feat: int) -> nn.Module:
    if act_type == "prelu":
        return nn.PReLU(num_parameters=num_feat)
    if act_type == "relu":
        return nn.ReLU()
    return nn.LeakyReLU(_LEAKY_SLOPE)


class SRVGGNetCompact(nn.Module):
    """SRVGGNetCompact with the official parameter names and state_dict order."""

    def __init__(self, p: Params) -> None:
        super().__init__()
        self.upscale = p.upscale
        layers: list[nn.Module] = [conv3x3(p.num_in_ch, p.num_feat), _activation(p.act_type, p.num_feat)]
        for _ in range(p.num_conv):
            layers += [conv3x3(p.num_feat, p.num_feat), _activation(p.act_type, p.num_feat)]
        layers.append(conv3x3(p.num_feat, p.num_out_ch * p.upscale * p.upscale))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(p.upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, num_in_ch, H, W) -> (N, num_out_ch, H*upscale, W*upscale)."""
        out = x
        for layer in self.body:
            out = layer(out)
        return self.upsampler(out) + F.interpolate(x, scale_factor=self.upscale, mode="nearest")


def build(params: Params) -> nn.Module:
    """A fresh SRVGGNetCompact (PyTorch default init; load weights afterwards)."""
    return SRVGGNetCompact(params)
