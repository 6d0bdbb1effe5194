"""Build/run backends (ONNX Runtime, Vastai VACC). Importing this package imports no optional SDK."""
