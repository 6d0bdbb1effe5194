"""The ONNX Runtime backend: its session (:mod:`.session`), its build stage (:mod:`.build`: fp16
conversion, int8 QDQ from calibration ranges, the VACC numerics emulation) and the QDQ writer
(:mod:`.qdq`). Importing this package imports neither onnxruntime nor the build code.

ONNX Runtime computes every int8 build this package makes, in one of two arithmetics: its own QDQ
scheme, or the VACC card's as emulated from TVM's quantizer (:mod:`vacc_deploy.backends.ort.vacc_numerics`).
:data:`Numerics` names them; it is declared here, by the backend that runs both.
"""

from __future__ import annotations

from typing import Literal, get_args

#: This backend's registry name.
NAME = "onnxruntime"
#: Whose int8 arithmetic an int8 build computes: ONNX Runtime's QDQ scheme (uint8 asymmetric
#: activations, float element-wise ops), or the VACC card's, emulated (docs/vacc.md).
Numerics = Literal["onnxruntime", "vacc"]
NUMERICS: tuple[Numerics, ...] = get_args(Numerics)
DEFAULT_NUMERICS: Numerics = "onnxruntime"
#: The emulation of the card's int8 arithmetic.
VACC_NUMERICS: Numerics = "vacc"
#: Model metadata key of an int8 build's weight width (7 or 8 bits): sessions use ONNX Runtime's
#: exact int8 kernels only for 8-bit weights (:mod:`.session`).
WEIGHT_BITS_KEY = "vacc_deploy.int8_weight_bits"
#: Model metadata key of an int8 build's numerics (:data:`Numerics`).
NUMERICS_KEY = "vacc_deploy.int8_numerics"
