"""The Vastai VACC backend: the session on the card (:mod:`.session`, vaststreamx), the vamc build
files (:mod:`.files`), the build stage (:mod:`.build`) and the emulation of the card's int8
arithmetic on ONNX Runtime (:mod:`.emulation`). Importing this package imports no vendor SDK."""

#: This backend's registry name.
NAME = "vacc"
