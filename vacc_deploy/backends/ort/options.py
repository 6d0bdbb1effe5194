"""What a build is asked for (:class:`BuildOptions`), shared by every backend's build stage, the
pipeline's ``--target-drop`` search and the CLI. Torch-free."""

from __future__ import annotations

from dataclasses import dataclass, replace

from vacc_deploy import machine
from vacc_deploy.backends.ort import DEFAULT_NUMERICS, VACC_NUMERICS, Numerics
from vacc_deploy.errors import UsageError
from vacc_deploy.types import (
    DEFAULT_ACTIVATION_BITS,
    DEFAULT_INT8_OPS,
    DEFAULT_PERCENTILE,
    DEFAULT_REDUCE_RANGE,
    DEFAULT_WEIGHT_ROUNDING,
    DEFAULT_WEIGHT_SCALE,
    VACC_PERCENTILE,
    REDUCE_RANGES,
    ActivationBits,
    CalibMethod,
    Int8Ops,
    Precision,
    ReduceRange,
    WeightRounding,
    WeightScale,
)


#: The calibration method giving TVM's threshold for a vamc ``calibrate_mode`` where ours differs
#: (``kl_divergence.py`` / ``calibrate.cc``: :mod:`vacc_deploy.calibration.tvm_kl`); others as named.
_TVM_METHODS = {"kl_divergence": "kl_divergence_tvm"}


@dataclass(frozen=True)
class BuildOptions:
    """How to build: precision; for int8 the calibration method (None: the row's seed method,
    filled in by the pipeline), per-channel weights, layers kept in float (Conv node names or
    0-based Conv indices), whether the edge convs (those that read the image and write the output,
    see :func:`vacc_deploy.backends.ort.layers.edge_convs`) stay float, the percentile of ``percentile``
    calibration, 7-bit weights (``reduce_range``; ``auto`` = on for x86-64 CPUs without VNNI. Off by
    default: sessions on such CPUs use ORT's exact int8 kernels instead, see
    :func:`vacc_deploy.machine.x86_without_vnni`), and which op types are quantized (``int8_ops``, a
    key of :data:`vacc_deploy.calibration.collect.INT8_OP_SETS`).

    ``target_drop`` (dB), ``target_fidelity`` (dB, the least PSNR of the int8 output against the
    fp32 output), ``reference_psnr`` (dB: judge the drop as predicted for images on which fp32 reaches
    it) and ``max_float_layers`` ask the pipeline to search the method, per-channel and
    float layers instead (:mod:`vacc_deploy.pipeline.search`); the pipeline replaces them by the
    search's choice, so a build never sees them. ``numerics`` picks whose int8
    arithmetic the build computes (:data:`vacc_deploy.backends.ort.Numerics`); ``weight_scale``
    (vacc numerics only, as in the vamc YAML) is TVM's weight threshold rule. The vacc numerics keep
    in float exactly the Conv layers the vamc YAML lists (``skip_layers`` and the edges when
    ``float_edges``), nothing else: ``int8_ops`` and ``reduce_range`` do not apply to it.
    ``activation_bits`` (ONNX Runtime numerics only): 8 (uint8 activations) or 16 (uint16
    activations, int8 weights; ORT runs them in float on CPU: a fidelity build, not a fast one).
    ``equalize`` and ``weight_rounding`` (int8, ONNX Runtime numerics only; fp32 rewrites that change
    how int8 rounds the network, not its fp32 function, :mod:`vacc_deploy.backends.ort.prepare`):
    cross-layer channel equalization of the export before calibration (the pipeline's equalize
    stage), and how the build rounds Conv weights (``nearest`` or ``gptq``). None for either: the
    row's choice, filled in by the pipeline (:class:`vacc_deploy.config.Quantization`); a backend
    given None does neither (:attr:`rounding`)."""

    precision: Precision = "fp32"
    quant: CalibMethod | None = None
    per_channel: bool = True
    skip_layers: tuple[str, ...] = ()
    float_edges: bool = True
    percentile: float = DEFAULT_PERCENTILE
    reduce_range: ReduceRange = DEFAULT_REDUCE_RANGE
    int8_ops: Int8Ops = DEFAULT_INT8_OPS
    target_drop: float | None = None
    target_fidelity: float | None = None
    reference_psnr: float | None = None
    max_float_layers: int | None = None
    numerics: Numerics = DEFAULT_NUMERICS
    weight_scale: WeightScale = DEFAULT_WEIGHT_SCALE
    activation_bits: ActivationBits = DEFAULT_ACTIVATION_BITS
    equalize: bool | None = None
    weight_rounding: WeightRounding | None = None

    @property
    def rounding(self) -> WeightRounding:
        """The weight rounding a build applies (``weight_rounding``, nearest when unset)."""
        return self.weight_rounding or DEFAULT_WEIGHT_ROUNDING

    def without_targets(self) -> BuildOptions:
        """These options with the search's fields cleared (what a build sees, or what a search starts
        from)."""
        return replace(self, target_drop=None, target_fidelity=None, reference_psnr=None, max_float_layers=None)

    @property
    def searches(self) -> bool:
        """An int8 request with a target (drop or fidelity) that the search turns into build options."""
        return self.precision == "int8" and (self.target_drop is not None or self.target_fidelity is not None)

    @property
    def emulates_vacc(self) -> bool:
        """An int8 build of the VACC card's arithmetic (emulated on ONNX Runtime)."""
        return self.precision == "int8" and self.numerics == VACC_NUMERICS

    @property
    def calibration(self) -> tuple[str, float]:
        """(calibration method of :data:`vacc_deploy.calibration.METHODS`, percentile) that give
        this build's thresholds: ``quant`` and ``percentile`` for the onnxruntime numerics; for the
        vacc numerics TVM's own rules (its 99.999 percentile, its KL search: docs/vacc.md)."""
        if not self.emulates_vacc:
            return str(self.quant), self.percentile
        return _TVM_METHODS.get(str(self.quant), str(self.quant)), VACC_PERCENTILE


def precision_label(precision: str, numerics: str | None) -> str:
    """How reports name a build: ``int8 (onnxruntime)``, ``int8 (vacc, emulated)``, else the precision."""
    if precision != "int8" or numerics is None:
        return precision
    return "int8 (vacc, emulated)" if numerics == VACC_NUMERICS else f"int8 ({numerics})"


def resolve_reduce_range(choice: str) -> bool:
    """``on``/``off``, or ``auto``: on for x86-64 without VNNI. Raises UsageError (option
    ``reduce_range``) for anything else."""
    if choice not in REDUCE_RANGES:
        raise UsageError(f"{choice}: expected {', '.join(REDUCE_RANGES)}", option="reduce_range")
    if choice == "auto":
        return machine.x86_without_vnni()
    return choice == "on"
