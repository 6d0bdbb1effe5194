"""The package's vocabulary: one ``Literal`` type per kind of choice, its values as a tuple, and
every default stated once. Torch-free; imports nothing of the package.

Backend names are not here: the registry (:data:`vacc_deploy.backends.BACKENDS`) is their one
list, and whose int8 arithmetic a build computes (``Numerics``) is declared by the ONNX Runtime
backend that computes both (:mod:`vacc_deploy.backends.ort`).
"""

from __future__ import annotations

from typing import Literal, get_args

#: What a build computes in: float32 (the export itself), float16, or int8 (QDQ / vamc int8).
Precision = Literal["fp32", "fp16", "int8"]
PRECISIONS: tuple[Precision, ...] = get_args(Precision)

#: How int8 activation ranges are chosen from the calibration statistics
#: (:data:`vacc_deploy.calibration.METHODS` implements each; the vamc YAML's ``calibrate_mode``).
CalibMethod = Literal["percentile", "kl_divergence", "max", "mse"]
CALIB_METHODS: tuple[CalibMethod, ...] = get_args(CalibMethod)

#: How calibration samples are cut from the images: native-scale random crops of the input size,
#: or whole images resized to it (the vendor's way).
CalibMode = Literal["auto", "crop", "resize", "mosaic"]
CALIB_MODES: tuple[CalibMode, ...] = get_args(CalibMode)

#: What is done to calibration images first: nothing, or the BSRGAN degradation model.
Degradation = Literal["none", "bsrgan"]
DEGRADATIONS: tuple[Degradation, ...] = get_args(Degradation)

#: Which op types an ONNX Runtime int8 build quantizes (:data:`vacc_deploy.calibration.collect.INT8_OP_SETS`).
Int8Ops = Literal["compute", "all"]
INT8_OPS: tuple[Int8Ops, ...] = get_args(Int8Ops)

#: 7-bit int8 weights: on, off, or auto (on for x86-64 CPUs without VNNI).
ReduceRange = Literal["auto", "on", "off"]
REDUCE_RANGES: tuple[ReduceRange, ...] = get_args(ReduceRange)

#: TVM's weight scale rule (the vamc YAML's ``weight_scale``): the max-abs, or that rounded up to a
#: power of two.
WeightScale = Literal["max", "power2"]
WEIGHT_SCALES: tuple[WeightScale, ...] = get_args(WeightScale)

#: Width of the quantized activations of an ONNX Runtime int8 build (weights are int8 either way).
ActivationBits = Literal[8, 16]
ACTIVATION_BITS: tuple[ActivationBits, ...] = get_args(ActivationBits)

#: How an ONNX Runtime int8 build rounds Conv weights onto their grid: to the nearest level, or
#: GPTQ's error-compensating rounding from the calibration images' Conv input statistics
#: (:mod:`vacc_deploy.backends.ort.weight_rounding`).
WeightRounding = Literal["nearest", "gptq"]
WEIGHT_ROUNDINGS: tuple[WeightRounding, ...] = get_args(WeightRounding)

#: Accuracy protocols: the papers' (Y channel, HR reference) or the vendor's (RGB, resized).
Protocol = Literal["standard", "vendor"]
PROTOCOLS: tuple[Protocol, ...] = get_args(Protocol)

#: Float-to-integer output conversion: the row's official one, or rounding.
Rounding = Literal["official", "round"]
ROUNDINGS: tuple[Rounding, ...] = get_args(Rounding)

# -- defaults, each stated once -------------------------------------------------------------------
#: Percentile of |activation| that ``percentile`` calibration keeps (ONNX Runtime's own is 99.999).
DEFAULT_PERCENTILE = 99.99
#: Calibration samples, and the seed of their choice.
DEFAULT_CALIB_NUM = 50
DEFAULT_CALIB_SEED = 0
DEFAULT_CALIB_MODE: CalibMode = "auto"  # crop, or mosaic when no image is half the input
DEFAULT_DEGRADATION: Degradation = "none"
#: ONNX opset of the export.
DEFAULT_OPSET = 17
#: Tile overlap in input (LR) pixels (:mod:`vacc_deploy.imaging.tiling` explains the choice).
DEFAULT_OVERLAP = 16
#: TVM's percentile for the vacc numerics (``_calibrate.py`` ``_find_scale_by_percentile``:
#: ``percentile=0.99999``), in %; ``--percentile`` sets the onnxruntime numerics' only.
VACC_PERCENTILE = 99.999
#: TVM's ``qconfig`` default weight scale rule.
DEFAULT_WEIGHT_SCALE: WeightScale = "power2"
DEFAULT_INT8_OPS: Int8Ops = "compute"
DEFAULT_REDUCE_RANGE: ReduceRange = "off"
DEFAULT_ACTIVATION_BITS: ActivationBits = 8
DEFAULT_WEIGHT_ROUNDING: WeightRounding = "nearest"
#: Cross-layer channel equalization before an int8 build's calibration (off: the export as is).
DEFAULT_EQUALIZE = False
DEFAULT_PROTOCOL: Protocol = "standard"
#: Benchmark: timed runs, and untimed runs after the first.
DEFAULT_ITERS = 20
DEFAULT_WARMUP = 3
