"""Key mapping between the two EDSR implementations: official EDSR-PyTorch (``edsr`` family) and
BasicSR (``edsr_basicsr`` family), for house weights derived from another row.

The two graphs compute the same function when EDSR-PyTorch's mean shifts are the DIV2K mean with
identity weights (as in training, where they are frozen) and BasicSR's ``rgb_mean`` is that mean
with ``img_range`` = EDSR-PyTorch's ``rgb_range`` = 255: ``sub_mean(x) = 255 (x/255 - mean)``, and
``add_mean(y) / 255 = y / 255 + mean``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from vacc_deploy.errors import WeightsError
from vacc_deploy.models.edsr import DIV2K_MEAN


def _check_mean_shift(state: Mapping[str, torch.Tensor], key: str, sign: float, rgb_range: float) -> None:
    weight, bias = state[f"{key}.weight"].float(), state[f"{key}.bias"].float()
    want = sign * rgb_range * torch.tensor(DIV2K_MEAN)
    if not (torch.allclose(weight.view(3, 3), torch.eye(3)) and torch.allclose(bias, want, atol=0.1)):
        raise WeightsError(f"{key}: not the DIV2K mean shift; the BasicSR graph cannot express it")


def edsr_to_basicsr(state: Mapping[str, torch.Tensor], n_resblocks: int, rgb_range: float = 255.0
                    ) -> dict[str, torch.Tensor]:
    """Map an EDSR-PyTorch state dict (x2 or x4 upsampler) to BasicSR EDSR keys.

    Raises WeightsError when the mean shifts are not the DIV2K mean (the mapping would change the
    function) or an expected key is missing.
    """
    try:
        _check_mean_shift(state, "sub_mean", -1.0, rgb_range)
        _check_mean_shift(state, "add_mean", 1.0, rgb_range)
        out = {}
        for part in ("weight", "bias"):
            out[f"conv_first.{part}"] = state[f"head.0.{part}"]
            for i in range(n_resblocks):
                out[f"body.{i}.conv1.{part}"] = state[f"body.{i}.body.0.{part}"]
                out[f"body.{i}.conv2.{part}"] = state[f"body.{i}.body.2.{part}"]
            out[f"conv_after_body.{part}"] = state[f"body.{n_resblocks}.{part}"]
            for k in (0, 2):
                if f"tail.0.{k}.{part}" in state:
                    out[f"upsample.{k}.{part}"] = state[f"tail.0.{k}.{part}"]
            out[f"conv_last.{part}"] = state[f"tail.1.{part}"]
    except KeyError as exc:
        raise WeightsError(f"EDSR-PyTorch state dict lacks {exc}") from exc
    return out
