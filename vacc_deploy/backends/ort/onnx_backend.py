"""Backends that run the fixed-shape ONNX builds (ONNX Runtime, OpenVINO, ...): their build stage is
the one ONNX build (:func:`vacc_deploy.backends.ort.build.build_onnx`), so such a backend only says
how to open a file. Torch-free; the build code is imported when a build runs."""

from __future__ import annotations

from pathlib import Path

from vacc_deploy.backends.base import Backend, BuildInputs, BuiltModel
from vacc_deploy.backends.ort import NUMERICS_KEY, VACC_NUMERICS, WEIGHT_BITS_KEY


class OnnxBackend(Backend):
    """A backend whose artifact is the ONNX file of the requested precision (fp32 export, fp16
    conversion, int8 QDQ from the calibration ranges)."""

    artifact = "onnx"
    calibration = "ranges"

    def build(self, inputs: BuildInputs) -> BuiltModel:
        from vacc_deploy.backends.ort.build import build_onnx

        return build_onnx(inputs, self.name)


def int8_8bit_weights(path: Path) -> bool:
    """True for an int8 model of ONNX Runtime's scheme whose weights use the full 8 bits (those can
    overflow the fast u8s8 kernels on CPUs without VNNI); False for fp32/fp16, 7-bit (reduce_range)
    builds and the vacc numerics emulation (symmetric int8 activations, convolutions in float)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    if meta.get(WEIGHT_BITS_KEY) == "7" or meta.get(NUMERICS_KEY) == VACC_NUMERICS:
        return False
    return any(n.op_type in ("QuantizeLinear", "QLinearConv") for n in model.graph.node)
