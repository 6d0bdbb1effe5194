"""The ONNX Runtime backend: its session (:mod:`.session`), its build stage (:mod:`.build`: fp16
conversion, int8 QDQ from calibration ranges, the VACC numerics emulation) and the QDQ writer
(:mod:`.qdq`). Importing this package imports neither onnxruntime nor the build code."""
