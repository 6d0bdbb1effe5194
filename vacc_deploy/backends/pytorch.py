"""PyTorch eager session: the reference backend. Imports torch only when a session is opened.

Unlike the fixed-shape backends it accepts any input size (``input_shape`` is None), so it can run a
whole image at once; with ``tile_shape`` it behaves like a fixed-shape model (for comparisons).
"""

from __future__ import annotations


import numpy as np

from vacc_deploy.backends.base import Backend, BuildInputs, BuiltModel, SessionOptions, installed
from vacc_deploy.config import RowConfig
from vacc_deploy.errors import BuildError, UsageError


class TorchSession:
    """Runs a row's PyTorch module on the CPU, float32, under ``torch.inference_mode``.

    Args:
        config: the row. weights: as for :func:`vacc_deploy.models.create_model`.
        tile_shape: fixed (N, C, H, W) to expose as ``input_shape`` (None = any size).
        threads: torch intra-op threads (default: torch's default).
    """

    def __init__(self, config: RowConfig, weights=None, tile_shape: tuple[int, ...] | None = None,
                 threads: int | None = None) -> None:
        import torch

        from vacc_deploy.models import create_model, row_spec

        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self.model = create_model(config, weights)
        self.spec = row_spec(config)
        self.input_shape = tuple(tile_shape) if tile_shape else None

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run a float32 NCHW batch; returns float32 NCHW."""
        torch = self._torch
        with torch.inference_mode():
            return self.model(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))).numpy()


def open_session(built: BuiltModel, options: SessionOptions = SessionOptions()) -> TorchSession:
    """The row's module, whole-image inference (see :class:`TorchBackend`)."""
    if not isinstance(built.config, RowConfig):
        raise BuildError(f"row '{built.row}': the torch backend needs the row's config to rebuild its module")
    weights = None if built.weights in (None, "None") else built.weights
    return TorchSession(built.config, weights, tile_shape=None, threads=options.threads)


class TorchBackend(Backend):
    """The PyTorch reference: the row's module in eager mode, fp32, any input size."""

    name = "torch"
    short = "torch"
    summary = "PyTorch reference (fp32, whole image)"
    artifact = "module"
    precisions = ("fp32",)

    def unavailable_reason(self) -> str | None:
        return None if installed("torch") else "torch is not installed (pip install vacc-deploy[export])"

    def build(self, inputs: BuildInputs) -> BuiltModel:
        """Nothing to build: the row and its weights (the session rebuilds the module). Raises
        UsageError for a precision other than fp32."""
        if inputs.options.precision not in self.precisions:
            raise UsageError(f"backend {self.name} runs {', '.join(self.precisions)} only "
                             f"(got {inputs.options.precision})", option="precision")
        config, exported = inputs.config, inputs.exported
        if exported is not None:
            spec, shape = exported.spec, tuple(exported.input_shape)
        else:
            from vacc_deploy.models import row_spec

            spec, shape = row_spec(config), tuple(config.input_shape)
        return BuiltModel(row=config.name, spec=spec, input_shape=shape, label=inputs.weights.label,
                          weights=str(inputs.weights.arg), config=config, backend=self.name)

    def open(self, built: BuiltModel, options: SessionOptions = SessionOptions()) -> TorchSession:
        return open_session(built, options)
