"""Running a session on whole images: the row's pre/post-processing around tiled (fixed-shape
backends) or whole-image (PyTorch) inference. Torch-free; shared by run, eval and benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vacc_deploy.backends import Session
from vacc_deploy.imaging.io import Image, to_uint, upscale_alpha
from vacc_deploy.imaging.tiling import DEFAULT_OVERLAP, pad_to_multiple, tiled_apply
from vacc_deploy.imaging.processing import from_network, to_network
from vacc_deploy.spec import ModelSpec

TILE_PAD_MODE = "reflect"  # padding of images smaller than a tile (the model sees real content)


@dataclass
class Upscaler:
    """A session plus the row's conventions: float RGB in, float RGB out.

    Attributes:
        session: any backend session; ``input_shape`` None means whole-image inference.
        spec: the row's :class:`ModelSpec` (channel order, value range, size multiple, scale).
        overlap: tile overlap in input pixels (fixed-shape backends only).
    """

    session: Session
    spec: ModelSpec
    overlap: int = DEFAULT_OVERLAP

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """RGB float32 (H, W, 3) in [0, 1] → RGB float32 (H*s, W*s, 3) on the [0, 1] scale, unclipped.

        The input is padded to the size multiple (``spec.pad_mode``) and the output cropped back.
        """
        s = self.spec.scale
        x, (h, w) = pad_to_multiple(to_network(rgb, self.spec)[0], self.spec.size_multiple, self.spec.pad_mode)
        shape = self.session.input_shape
        if shape is None:
            out = self.session.run(x[None])[0]
        else:
            out = tiled_apply(x, self.session.run, (shape[2], shape[3]), s, self.overlap,
                              batch_size=shape[0], pad_mode=TILE_PAD_MODE, size_multiple=self.spec.size_multiple)
        return from_network(out[:, : h * s, : w * s], self.spec)


def conversion_for(spec: ModelSpec, rounding: str) -> str:
    """The float→integer output conversion: ``official`` (the row's own: round or truncate) or ``round``."""
    return spec.output_conversion if rounding == "official" else "round"


def upscale_image(image: Image, upscaler: Upscaler, rounding: str = "official") -> tuple[np.ndarray, np.ndarray | None]:
    """Upscale a decoded image; returns (RGB uint8/uint16 image, alpha of the same dtype or None).

    The output keeps the input's bit depth. Alpha (if any) is upscaled separately with bicubic
    interpolation (it does not go through the network).
    """
    out = upscaler(image.rgb)
    conversion = conversion_for(upscaler.spec, rounding)
    rgb = to_uint(out, image.bit_depth, conversion)
    alpha = None
    if image.alpha is not None:
        alpha = to_uint(upscale_alpha(image.alpha, rgb.shape[:2]), image.bit_depth, "round")
    return rgb, alpha
