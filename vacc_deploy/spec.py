"""The conventions of a model as the official implementation uses them (what the network sees).

A :class:`ModelSpec` is declared once per architecture family, in that family's model module
(``vacc_deploy/models/<family>.py``, function ``spec(params)``); YAML configs never repeat it. It
travels with the exported ONNX model (metadata key ``vacc_deploy.spec``), so run/eval/benchmark of a
built model read it from the artifact and never import torch.

This module is torch-free.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Literal

ChannelOrder = Literal["RGB", "BGR"]
OutputConversion = Literal["round", "truncate"]

SPEC_METADATA_KEY = "vacc_deploy.spec"


@dataclass(frozen=True)
class ModelSpec:
    """Pre/post-processing conventions of one model row.

    Attributes:
        scale: output size = input size * scale (1 for restoration models such as deblurring).
        channel_order: channel order of the network's input and output tensors.
        value_range: the network takes uint8 pixels as ``pixel / 255 * value_range`` (1.0 or 255.0)
            and its output uses the same range.
        size_multiple: input H and W must be multiples of this (inputs are padded, outputs cropped).
        pad_mode: how inputs are padded up to ``size_multiple`` (``edge`` or ``reflect``).
        output_conversion: how the official test code turns the float output into uint8
            (``round``, or ``truncate`` as ``mul(255).clamp(0,255).byte()`` does).
        y_conversion: how the official test code computes the BT.601 Y channel from the uint8
            images: ``float`` (kept fractional, BasicSR/EDSR style) or ``round`` (rounded to
            integers, as MATLAB ``rgb2ycbcr`` does for uint8 input).
    """

    scale: int
    channel_order: ChannelOrder = "RGB"
    value_range: float = 1.0
    size_multiple: int = 1
    pad_mode: Literal["edge", "reflect"] = "edge"
    output_conversion: OutputConversion = "round"
    y_conversion: Literal["float", "round"] = "float"

    def to_json(self) -> str:
        """Serialize to a compact JSON string (stored in ONNX metadata)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelSpec":
        """Inverse of :meth:`to_json`."""
        return cls(**json.loads(text))

    def check_input_hw(self, h: int, w: int) -> str | None:
        """Return a reason why an input of H x W is not accepted, or None when it is."""
        m = self.size_multiple
        if h <= 0 or w <= 0:
            return f"input size {h}x{w} must be positive"
        if h % m or w % m:
            return f"input H and W must be multiples of {m} (got {h}x{w})"
        return None
