"""The Vastai VACC backend: the session on the card (:mod:`.session`, vaststreamx), the vamc build
files (:mod:`.files`), compiling (:mod:`.compile`) and the build stage (:mod:`.build`). The card's
int8 arithmetic emulated on ONNX Runtime is :mod:`vacc_deploy.backends.ort.vacc_numerics`.
Importing this package imports no vendor SDK."""

from __future__ import annotations

from vacc_deploy.types import Precision

#: This backend's registry name.
NAME = "vacc"
#: What vamc builds for the card (the card runs no fp32 build).
PRECISIONS: tuple[Precision, ...] = ("fp16", "int8")
