"""The deterministic "synthetic-v1" weight rule of ``../shared/data/parity/README.md``.

For entry ``i`` (in the module's ``state_dict()`` order) of shape ``S``::

    std = 1/sqrt(prod(S[1:])) if len(S) > 1 else 0.02
    g = torch.Generator().manual_seed(seed_base + i)
    t = torch.randn(S, generator=g, dtype=torch.float32) * (std * std_factor)

Every floating-point entry is replaced (mean-shift convs included).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch


def synthetic_state_dict(
    module: torch.nn.Module, seed_base: int = 1000, std_factor: float = 1.0
) -> "OrderedDict[str, torch.Tensor]":
    """Return synthetic-v1 tensors for every entry of ``module.state_dict()``, in its order.

    Side effects: none (the module is not modified). Non-floating entries are kept as they are.
    """
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for i, (key, ref) in enumerate(module.state_dict().items()):
        if not torch.is_floating_point(ref):
            out[key] = ref.clone()
            continue
        shape = tuple(ref.shape)
        std = 1.0 / math.sqrt(math.prod(shape[1:])) if len(shape) > 1 else 0.02
        gen = torch.Generator().manual_seed(seed_base + i)
        out[key] = torch.randn(shape, generator=gen, dtype=torch.float32) * (std * std_factor)
    return out
