"""RRDBNet as in cszn/BSRGAN ``models/network_rrdbnet.py`` (BSRGAN / BSRNet generators), which is
also Real-ESRGAN's x4 generator (XPixelGroup/BasicSR ``basicsr/archs/rrdbnet_arch.py``, scale 4).

Input: NCHW float32 RGB in [0, 1]. Output: NCHW RGB, same range (not clamped), H*scale x W*scale.
Upsampling is nearest-neighbour x2 followed by a 3x3 conv and LeakyReLU(0.2), once for scale 2 and
twice for scale 4 (``upconv2`` exists only for scale 4).

The module's parameter names are BSRGAN's (KAIR layout). :func:`convert_checkpoint` also takes the
Real-ESRGAN / BasicSR layout (``{"params_ema": ...}`` or ``{"params": ...}``, ``params_ema``
preferred as Real-ESRGAN's own inference does) and renames its keys with :data:`BASICSR_TO_KAIR`:
the same layers in the same order, so a Real-ESRGAN x4plus checkpoint loads strictly into any
scale-4, 23-block row (bsrgan_x4, bsrnet_x4, realesrgan_x4plus). BasicSR's scale-2 RRDBNet
(pixel-unshuffled input, 12 input channels) is a different network and is not mapped.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from vacc_deploy.models import common
from vacc_deploy.models.common import conv3x3
from vacc_deploy.spec import ModelSpec

__all__ = ["Params", "spec", "build", "convert_checkpoint", "RRDBNet"]

_SLOPE = 0.2
_RES_SCALE = 0.2

#: Real-ESRGAN / BasicSR key -> BSRGAN / KAIR key (regex, replacement), applied to the part of the key
#: before ``.weight`` / ``.bias``. Every BasicSR key matches exactly one rule.
BASICSR_TO_KAIR: tuple[tuple[str, str], ...] = (
    (r"conv_first", "conv_first"),
    (r"body\.(\d+)\.rdb([123])\.conv([1-5])", r"RRDB_trunk.\1.RDB\2.conv\3"),
    (r"conv_body", "trunk_conv"),
    (r"conv_up([12])", r"upconv\1"),
    (r"conv_hr", "HRconv"),
    (r"conv_last", "conv_last"),
)


class Params(BaseModel):
    """Constructor parameters of RRDBNet (``sf`` upstream is ``scale`` here)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    in_nc: int = Field(3, gt=0)
    out_nc: int = Field(3, gt=0)
    nf: int = Field(64, gt=0)
    nb: int = Field(23, gt=0)
    gc: int = Field(32, gt=0)
    scale: Literal[2, 4] = 4


def spec(params: Params) -> ModelSpec:
    """RGB, [0, 1], any input size, outputs rounded to uint8."""
    return ModelSpec(scale=params.scale, channel_order="RGB", value_range=1.0, size_multiple=1,
                     pad_mode="edge", output_conversion="round")


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs; returns ``conv5(...) * 0.2 + x`` (N, nf, H, W)."""

    def __init__(self, nf: int, gc: int) -> None:
        super().__init__()
        for i in range(1, 5):
            setattr(self, f"conv{i}", conv3x3(nf + (i - 1) * gc, gc))
        self.conv5 = conv3x3(nf + 4 * gc, nf)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            feats.append(F.leaky_relu(conv(torch.cat(feats, 1)), _SLOPE))
        out = self.conv5(torch.cat(feats, 1))
        return out * _RES_SCALE + x


class RRDB(nn.Module):
    """Three dense blocks in sequence with an outer residual scaled by 0.2."""

    def __init__(self, nf: int, gc: int) -> None:
        super().__init__()
        self.RDB1 = ResidualDenseBlock(nf, gc)
        self.RDB2 = ResidualDenseBlock(nf, gc)
        self.RDB3 = ResidualDenseBlock(nf, gc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.RDB3(self.RDB2(self.RDB1(x)))
        return out * _RES_SCALE + x


class RRDBNet(nn.Module):
    """RRDBNet with the official parameter names (``conv_first``, ``RRDB_trunk.N.RDBk.convj``, ...)."""

    def __init__(self, p: Params) -> None:
        super().__init__()
        self.scale = p.scale
        self.conv_first = conv3x3(p.in_nc, p.nf)
        self.RRDB_trunk = nn.Sequential(*[RRDB(p.nf, p.gc) for _ in range(p.nb)])
        self.trunk_conv = conv3x3(p.nf, p.nf)
        self.upconv1 = conv3x3(p.nf, p.nf)
        if p.scale == 4:
            self.upconv2 = conv3x3(p.nf, p.nf)
        self.HRconv = conv3x3(p.nf, p.nf)
        self.conv_last = conv3x3(p.nf, p.out_nc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_nc, H, W) -> (N, out_nc, H*scale, W*scale)."""
        fea = self.conv_first(x)
        fea = fea + self.trunk_conv(self.RRDB_trunk(fea))
        ups = [self.upconv1] + ([self.upconv2] if self.scale == 4 else [])
        for conv in ups:
            fea = F.leaky_relu(conv(F.interpolate(fea, scale_factor=2, mode="nearest")), _SLOPE)
        return self.conv_last(F.leaky_relu(self.HRconv(fea), _SLOPE))


def _kair_key(key: str) -> str:
    """One BasicSR key in KAIR naming; a key no rule matches is returned unchanged (the strict load
    then names it)."""
    layer, dot, kind = key.rpartition(".")
    for pattern, repl in BASICSR_TO_KAIR:
        if re.fullmatch(pattern, layer):
            return re.sub(pattern, repl, layer) + dot + kind
    return key


def convert_checkpoint(obj: Any, fmt: str) -> dict[str, torch.Tensor]:
    """A BSRGAN (KAIR) or Real-ESRGAN (BasicSR) RRDBNet checkpoint as a KAIR-key float32 state dict.

    Unwrapped by :func:`common.convert_realesrgan_checkpoint` (``params_ema`` first, float32).
    When the keys are in the BasicSR layout (``conv_body.*`` present) every key is renamed with
    :data:`BASICSR_TO_KAIR`. Raises WeightsError.
    """
    state = common.convert_realesrgan_checkpoint(obj, fmt)
    if any(k.startswith("conv_body.") for k in state):
        state = {_kair_key(k): v for k, v in state.items()}
    return state


def build(params: Params) -> nn.Module:
    """A fresh RRDBNet (PyTorch default init; load weights afterwards)."""
    return RRDBNet(params)
