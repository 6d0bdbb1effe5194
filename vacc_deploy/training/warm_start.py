"""Warm starts: initialisations under which an untrained network already computes bilinear
upscaling, so that training learns the residual detail instead of first learning to pass the image
(and its colours) through a deep plain stack from PyTorch's default initialisation, whose output is
about 1e-3 of the input's spread for LESRCNN.

LESRCNN (``--warm-start`` in ``scripts/train.py``): six of the 64 feature channels carry the image,
split into its positive and negative parts so that they pass the ReLUs unchanged (``relu(x - mean)``
and ``relu(mean - x)``): ``conv1`` copies them, each residual 1x1 conv adds nothing to them, the
upsampler interpolates them bilinearly (half in each of its two uses, ``up(r8) + up(r0)``), the tail
convs copy them and ``conv18`` recombines them. Every other weight keeps PyTorch's default
initialisation; all weights are trained. Output = bilinear upscaling of the input (x2, x3; x4 as
bilinear x2 twice), away from the image border.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from vacc_deploy.errors import UsageError

_IMAGE = 6  # channels 0-2: relu(x - mean), 3-5: relu(mean - x)


def _bilinear_taps(r: int) -> torch.Tensor:
    """(r, 3): for each sub-pixel offset a, the weights of LR pixels i-1, i, i+1 (half-pixel centres)."""
    taps = torch.zeros(r, 3)
    for a in range(r):
        t = (a + 0.5) / r - 0.5  # offset from LR pixel i, in LR pixels
        taps[a, 1] = 1 - abs(t)
        taps[a, 0 if t < 0 else 2] = abs(t)
    return taps


def _centre(conv: nn.Conv2d, out_ch: int, in_ch: int, value: float) -> None:
    k = conv.weight.shape[-1] // 2
    conv.weight[out_ch, in_ch, k, k] = value


@torch.no_grad()
def lesrcnn(model: nn.Module) -> None:
    """Warm-start a :class:`vacc_deploy.models.lesrcnn.LESRCNN` in place (see the module docstring)."""
    img = slice(0, _IMAGE)
    conv1 = model.conv1[0]
    conv1.weight[img] = 0
    for c in range(3):
        _centre(conv1, c, c, 1.0)
        _centre(conv1, 3 + c, c, -1.0)
    k = 0
    while hasattr(model, f"conv{2 * k + 3}"):
        getattr(model, f"conv{2 * k + 3}")[0].weight[img] = 0  # the residual adds nothing to the image
        k += 1
    for stage, conv in enumerate(m for m in model.upsample.up.body if isinstance(m, nn.Conv2d)):
        r = int(round((conv.out_channels // conv.in_channels) ** 0.5))
        taps, gain = _bilinear_taps(r), 0.5 if stage == 0 else 1.0  # the upsampler runs twice: up(r8) + up(r0)
        for c in range(_IMAGE):
            rows = slice(c * r * r, (c + 1) * r * r)
            conv.weight[rows] = 0
            conv.bias[rows] = 0
            for a in range(r):
                for b in range(r):
                    conv.weight[c * r * r + a * r + b, c] = gain * torch.outer(taps[a], taps[b])
    for j in range(1, 5):
        tail = getattr(model, f"conv17_{j}")[0]
        tail.weight[img] = 0
        for c in range(_IMAGE):
            _centre(tail, c, c, 1.0)
    conv18 = model.conv18[0]
    conv18.weight.zero_()
    for c in range(3):
        _centre(conv18, c, c, 1.0)
        _centre(conv18, c, 3 + c, -1.0)


WARM_STARTS: dict[str, Callable[[nn.Module], None]] = {"lesrcnn": lesrcnn}


def warm_start(arch: str, model: nn.Module) -> None:
    """Apply the family's warm start. Raises UsageError for a family without one."""
    if arch not in WARM_STARTS:
        raise UsageError(f"no warm start for architecture '{arch}' (known: {', '.join(WARM_STARTS)})",
                         option="warm_start")
    WARM_STARTS[arch](model)
