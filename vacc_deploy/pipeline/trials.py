"""The rules of the int8 search (:mod:`vacc_deploy.pipeline.search`): its targets, its trials,
how the layers kept in float grow, and which trial is chosen. Torch-free, no I/O."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from vacc_deploy import machine
from vacc_deploy.backends import BuildOptions
from vacc_deploy.backends.ort import VACC_NUMERICS
from vacc_deploy.backends.ort.options import resolve_reduce_range
from vacc_deploy.types import WEIGHT_SCALES

#: A trial meets ``--target-drop T`` when its validation drop is within ``MARGIN * T``: calibration
#: folders hold few images, often of lower quality than evaluation sets, and a model's PSNR drop grows
#: as its fp32 error shrinks (lesrcnn_x2 kl_divergence: 12 RealSRSet validation images -0.043 dB, Set5 -0.133 dB).
MARGIN = 0.3
#: A trial meets ``--target-fidelity F`` when its validation fidelity is at least ``F + FIDELITY_MARGIN``
#: dB: fidelity moves less between image sets than a PSNR drop, but it does move
#: (realesr_animevideov3_x4: see docs/accuracy.md).
FIDELITY_MARGIN = 0.5
METHODS = ("percentile", "kl_divergence")
#: A faster trial that meets the target replaces the accuracy-first choice when its speed-up over fp32
#: is at least this many times the choice's (latency is timed on few runs; smaller gains are noise).
SPEED_GAIN = 1.15


@dataclasses.dataclass(frozen=True)
class Targets:
    """What a trial must reach: a PSNR ``drop`` (dB >= 0), a ``fidelity`` PSNR to fp32 (dB), either or
    both; ``reference_psnr`` (dB): judge the drop as predicted for images on which fp32 reaches it
    (:func:`vacc_deploy.evaluation.protocols.drop_at_psnr`) instead of on the validation images."""

    drop: float | None = None
    fidelity: float | None = None
    reference_psnr: float | None = None

    def meets(self, drop: float, fidelity: float | None = None, predicted_drop: float | None = None) -> bool:
        """Whether a trial's validation ``drop``, ``fidelity`` and ``predicted_drop`` (dB, negative =
        worse; None = not measured) meet every target: the drop within ``MARGIN * drop`` on the
        validation images, or the predicted drop within ``drop`` (no margin: the prediction carries
        the transfer); the fidelity at least ``fidelity + FIDELITY_MARGIN``."""
        if self.drop is not None:
            if self.reference_psnr is None:
                if drop < -MARGIN * self.drop:
                    return False
            elif predicted_drop is None or predicted_drop < -self.drop:
                return False
        return self.fidelity is None or (fidelity is not None and fidelity >= self.fidelity + FIDELITY_MARGIN)


@dataclasses.dataclass(frozen=True)
class Trial:
    """One scored build of the search: its options (method, per-channel weights, layers kept in
    float by index and name, numerics, weight_scale, op types, 7-bit weights), mean validation PSNR
    (dB), drop against fp32 (dB, negative = worse), p50 latency (ms) and speed-up over fp32, and
    whether it meets the target; ``fidelity_db``: its fidelity PSNR to fp32 (dB; only with a
    fidelity target); ``predicted_drop_db``: the drop predicted at the reference fp32 PSNR (dB; only
    with one). ``k``: the float-layer count of a growth step; ``refine``: a last
    method x weight_scale trial; ``variant``: the faster-build options it adds. :meth:`to_dict` is
    its entry in the search JSON."""

    quant: str | None
    per_channel: bool
    skip_layers: tuple[int | str, ...]
    numerics: str
    weight_scale: str
    int8_ops: str
    reduce_range: str
    weight_bits: int
    float_layers: tuple[str, ...]
    float_layer_indices: tuple[int, ...]
    psnr: float
    drop_db: float
    ms: float
    speedup: float
    meets: bool
    k: int | None = None
    refine: bool = False
    variant: dict[str, str] | None = None
    fidelity_db: float | None = None
    predicted_drop_db: float | None = None

    @property
    def drop_score(self) -> float:
        """The drop the target is judged on: predicted at the reference PSNR when there is one."""
        return self.drop_db if self.predicted_drop_db is None else self.predicted_drop_db

    def to_dict(self) -> dict[str, Any]:
        """The JSON entry: lists for the tuples; ``k``, ``refine``, ``variant``, ``fidelity_db`` and
        ``predicted_drop_db`` only when set."""
        d = dataclasses.asdict(self)
        d.update(skip_layers=list(self.skip_layers), float_layers=list(self.float_layers),
                 float_layer_indices=list(self.float_layer_indices))
        for key, unset in (("k", None), ("refine", False), ("variant", None), ("fidelity_db", None),
                           ("predicted_drop_db", None)):
            if d[key] == unset:
                del d[key]
        return d


def choose(trials: list[Trial]) -> Trial:
    """Among trials meeting the target, the accuracy-first choice (of the default-build trials when
    one meets it: fewest float layers, then smallest drop), unless a trial is at least ``SPEED_GAIN``
    times faster (then the fastest such; never for the vacc numerics, whose emulation speed is not
    the card's); none meeting it: the smallest drop (the predicted one with a
    reference PSNR; with a fidelity target: the highest fidelity). Faster-build trials carry a ``variant``."""
    met = [t for t in trials if t.meets]
    if not met:
        return max(trials, key=lambda t: t.drop_score if t.fidelity_db is None else t.fidelity_db)
    first = min([t for t in met if t.variant is None] or met, key=lambda t: (len(t.float_layers), -t.drop_score))
    # the vacc emulation's speed on this CPU says nothing of the card's (docs/vacc.md, "Speed")
    faster = [t for t in met if t.numerics != VACC_NUMERICS and t.speedup >= SPEED_GAIN * first.speedup]
    return max(faster, key=lambda t: t.speedup) if faster else first


def first_trials(base: BuildOptions) -> list[BuildOptions]:
    """Step 1: each calibration method x per-channel / per-tensor (x each ``weight_scale`` rule
    for the vacc numerics)."""
    scales = WEIGHT_SCALES if base.numerics == VACC_NUMERICS else (base.weight_scale,)
    return [dataclasses.replace(base, quant=m, per_channel=pc, weight_scale=ws)
            for m in METHODS for pc in (True, False) for ws in scales]


def fast_variants(base: BuildOptions) -> list[dict[str, str]]:
    """The build options that may make ``base`` faster on ONNX Runtime: ``int8_ops="all"`` (Adds
    int8 too, so every int8 Conv fuses into a QLinearConv) and, on x86 CPUs without VNNI, 7-bit
    weights (ORT's fast u8s8 kernels), alone and together; empty when ``base`` has them already,
    and for the vacc numerics (neither is a vamc setting)."""
    if base.numerics == VACC_NUMERICS:
        return []
    ops = ["compute", "all"] if base.int8_ops == "compute" else [base.int8_ops]
    seven_bit_helps = machine.x86_without_vnni() and not resolve_reduce_range(base.reduce_range)
    bits = [base.reduce_range, "on"] if seven_bit_helps else [base.reduce_range]
    return [{"int8_ops": o, "reduce_range": r} for o in ops for r in bits][1:]


def grow(try_k: Callable[[int], Trial], limit: int) -> None:
    """Keep k = 1, 2, 4, ... worst layers in float until the target is met (or ``limit``), then bisect."""
    lo, k = 0, 1
    while k <= limit:
        if try_k(k).meets:
            hi = k
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if try_k(mid).meets else (mid, hi)
            return
        lo = k
        k = limit if k < limit < 2 * k else 2 * k
