"""PyTorch eager session: the reference backend. Imports torch (only when this backend is used).

Unlike the fixed-shape backends it accepts any input size (``input_shape`` is None), so it can run a
whole image at once; with ``tile_shape`` it behaves like a fixed-shape model (for comparisons).
"""

from __future__ import annotations

import numpy as np
import torch

from vacc_deploy.config import RowConfig
from vacc_deploy.models import create_model, row_spec


class TorchSession:
    """Runs a row's PyTorch module on the CPU, float32, under ``torch.no_grad``.

    Args:
        config: the row. weights: as for :func:`vacc_deploy.models.create_model`.
        tile_shape: fixed (N, C, H, W) to expose as ``input_shape`` (None = any size).
        threads: torch intra-op threads (default: torch's default).
    """

    def __init__(self, config: RowConfig, weights=None, tile_shape: tuple[int, ...] | None = None,
                 threads: int | None = None) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.model = create_model(config, weights)
        self.spec = row_spec(config)
        self.input_shape = tuple(tile_shape) if tile_shape else None

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run a float32 NCHW batch; returns float32 NCHW."""
        with torch.inference_mode():
            return self.model(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))).numpy()


def open_session(built, options) -> TorchSession:
    """Backend entry point (see :mod:`vacc_deploy.backends`): the row's module, whole-image inference."""
    config = built.config
    weights = None if built.weights in (None, "None") else built.weights
    return TorchSession(config, weights, tile_shape=None, threads=options.threads)
