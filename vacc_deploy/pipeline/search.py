"""``--target-drop`` / ``--target-fidelity``: find the int8 build that stays within a PSNR drop of
fp32, and/or whose output stays within a fidelity PSNR of fp32's output, with the fewest layers in
float. Torch-free.

A trial meets a drop target when its drop on the validation pairs is within ``MARGIN`` times it,
and a fidelity target when its fidelity PSNR on them (RGB, pooled over the images, as ``eval``
reports it) is at least the target plus ``FIDELITY_MARGIN``; with both, it must meet both. A
GAN-trained model's PSNR to ground truth hides int8 noise (realesrgan_x4plus: -0.05 dB for an
output 31 dB from fp32's), so for such rows fidelity is the target that means something.
Validation pairs are images of the calibration folder used as ground truth (never the evaluation
set): a seeded choice of ``VAL_IMAGES`` files, HR = the image (cropped to a multiple of the scale),
LR = MATLAB-bicubic downscale, scored with the standard protocol (:mod:`vacc_deploy.evaluation.protocols`).
The calibration samples are crops of the same folder; calibration never sees ground truth, so the
overlap cannot fit the ranges to the validation scores beyond what any image statistic would.

Search (every trial is an ordinary cached build, scored on the pairs and timed):
1. each calibration method (percentile, kl_divergence) x per-channel / per-tensor weights;
2. if the best of those misses the target: rank its int8 layers by :mod:`vacc_deploy.pipeline.analysis`
   (worst SQNR alone first) and keep the k worst in float for k = 1, 2, 4, ... up to
   ``max_float_layers``, then bisect between the last miss and the first hit;
3. the faster int8 builds of that choice (every op type int8, so that each int8 Conv fuses into a
   QLinearConv; on x86 without VNNI also 7-bit weights for ORT's fast kernels, see
   docs/accuracy.md); one of them is chosen when it meets the target and is clearly faster.
The result (every trial, the choice, whether the target was met) is cached as JSON under
``<workdir>/<row>/search/``; the chosen build is the normal cached build of its options.

With the ``vacc`` numerics (``--numerics vacc``, or ``--backend vacc``, whose trials are then the
emulated builds) the search covers only what the vamc YAML can express: step 1 also tries both
``weight_scale`` rules; step 2 grows ``skip_conv_layers`` along a greedy ranking made on the
emulated build itself (:mod:`vacc_deploy.pipeline.vacc_rank`: fidelity to fp32 on calibration
samples; under TVM's rules what a float conv saves depends on its neighbours, which the
onnxruntime analysis cannot see); when the target is still missed, the other method x
``weight_scale`` pairs are tried with the best trial's float convs; step 3 is skipped (op types and
7-bit weights are ONNX Runtime options).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np

from vacc_deploy import artifacts, machine
from vacc_deploy.backends import AUTO, DEFAULT_BACKEND, BuildOptions, SessionOptions
from vacc_deploy.backends.ort.layers import float_layers
from vacc_deploy.backends.ort.options import resolve_reduce_range
from vacc_deploy.backends.ort import VACC_NUMERICS
from vacc_deploy.backends.ort.build import BUILD_FORMAT
from vacc_deploy.backends.vacc import NAME as VACC
from vacc_deploy.errors import UsageError
from vacc_deploy.pipeline import vacc_rank
from vacc_deploy.pipeline.cache import cached_json
from vacc_deploy.pipeline.requests import ModelRequest
from vacc_deploy.pipeline.stages import Upstream, build_stage, open_upscaler
from vacc_deploy.types import WEIGHT_SCALES

SEARCH_FORMAT = 5  # 5: vacc ranking from the emulated build
VAL_IMAGES = 12
#: A trial meets ``--target-drop T`` when its validation drop is within ``MARGIN * T``: calibration
#: folders hold few images, often of lower quality than evaluation sets, and a model's PSNR drop grows
#: as its fp32 error shrinks (lesrcnn_x2 kl_divergence: 12 RealSRSet validation images -0.043 dB, Set5 -0.133 dB).
MARGIN = 0.3
#: A trial meets ``--target-fidelity F`` when its validation fidelity is at least ``F + FIDELITY_MARGIN``
#: dB: fidelity moves less between image sets than a PSNR drop, but it does move
#: (realesr_animevideov3_x4: see docs/accuracy.md).
FIDELITY_MARGIN = 0.5
METHODS = ("percentile", "kl_divergence")
SPEED_RUNS = 10
#: A faster trial that meets the target replaces the accuracy-first choice when its speed-up over fp32
#: is at least this many times the choice's (latency is timed on few runs; smaller gains are noise).
SPEED_GAIN = 1.15
ANALYSIS_IMAGES = 16

log = logging.getLogger(__name__)


def validation_pairs(folder: Path, n: int = VAL_IMAGES, seed: int = 0) -> list:
    """A seeded choice of ``n`` images of ``folder`` as HR-only pairs (sorted by name)."""
    from vacc_deploy.imaging.datasets import Pair, list_images

    paths = list_images(folder)
    if not paths:
        raise UsageError(f"no images in {folder} to validate on", option="target_drop")
    rng = np.random.default_rng(seed + 7919)
    chosen = sorted(rng.choice(len(paths), size=min(n, len(paths)), replace=False))
    return [Pair(paths[i].stem, paths[i], None) for i in chosen]


@dataclasses.dataclass(frozen=True)
class _Setup:
    """What every trial of one search shares: the upstream artifacts, the request, the validation
    pairs, the fp32 reference score and the target."""

    up: Upstream
    req: ModelRequest
    pairs: list
    target: float | None
    fidelity: float | None = None
    ref: dict[str, Any] = dataclasses.field(default_factory=dict)

    def meets(self, drop: float, fidelity: float | None) -> bool:
        """Whether a trial of validation ``drop`` and ``fidelity`` (dB) meets this search's targets."""
        return meets_targets(drop, fidelity, self.target, self.fidelity)


def meets_targets(drop: float, fidelity: float | None, target_drop: float | None,
                  target_fidelity: float | None) -> bool:
    """Whether a validation ``drop`` (dB, negative = worse) and ``fidelity`` (dB; None = not
    measured) meet every target set: the drop within ``MARGIN * target_drop``, the fidelity at least
    ``target_fidelity + FIDELITY_MARGIN``."""
    drop_ok = target_drop is None or drop >= -MARGIN * target_drop
    return drop_ok and (target_fidelity is None or (fidelity or -np.inf) >= target_fidelity + FIDELITY_MARGIN)


def _candidate(s: _Setup, req: ModelRequest) -> tuple[Any, Any]:
    from vacc_deploy.evaluation.protocols import Candidate

    built = build_stage(s.up, req)
    up = open_upscaler(built, req.backend, SessionOptions())
    return built, Candidate(built.precision, built.quant, req.backend, up, built.input_shape[2:])


def _score(s: _Setup, req: ModelRequest) -> dict[str, Any]:
    """Mean validation PSNR (Y, standard protocol), fidelity PSNR to fp32 (RGB, pooled; only with a
    fidelity target, else None) and p50 latency (ms; 2 untimed runs, then ``SPEED_RUNS`` timed ones
    of a fixed random input) of the model ``req`` names."""
    from vacc_deploy.benchmark.measure import measure
    from vacc_deploy.evaluation.protocols import evaluate

    built, cand = _candidate(s, req)
    fp32 = [_candidate(s, req.with_precision("fp32"))[1]] if s.fidelity is not None and built.precision != "fp32" else []
    res = evaluate(s.pairs, [*fp32, cand], row=s.up.config.name, dataset=Path("."), scale=built.spec.scale,
                   progress=False)
    mine = res["results"][-1]
    x = np.random.default_rng(0).random(built.input_shape, dtype=np.float32)
    timing = measure(cand.upscaler.session, x, iters=SPEED_RUNS, warmup=1)
    return {"psnr": mine["psnr"], "fidelity": mine["fidelity_psnr"] if fp32 else None,
            "ms": timing["latency_ms"]["p50"]}


@dataclasses.dataclass(frozen=True)
class Trial:
    """One scored build of the search: its options (method, per-channel weights, layers kept in
    float by index and name, numerics, weight_scale, op types, 7-bit weights), mean validation PSNR
    (dB), drop against fp32 (dB, negative = worse), p50 latency (ms) and speed-up over fp32, and
    whether it meets the target; ``fidelity_db``: its fidelity PSNR to fp32 (dB; only with a
    fidelity target). ``k``: the float-layer count of a growth step; ``refine``: a last
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

    def to_dict(self) -> dict[str, Any]:
        """The JSON entry: lists for the tuples; ``k``, ``refine``, ``variant`` and ``fidelity_db``
        only when set."""
        d = dataclasses.asdict(self)
        d.update(skip_layers=list(self.skip_layers), float_layers=list(self.float_layers),
                 float_layer_indices=list(self.float_layer_indices))
        for key, unset in (("k", None), ("refine", False), ("variant", None), ("fidelity_db", None)):
            if d[key] == unset:
                del d[key]
        return d


def _trial(s: _Setup, opts: BuildOptions, **tag: Any) -> Trial:
    score = _score(s, dataclasses.replace(s.req, build=opts))
    names, indices = float_layers(s.up.exported.onnx_path, opts)
    drop = score["psnr"] - s.ref["psnr"]
    trial = Trial(quant=opts.quant, per_channel=opts.per_channel, skip_layers=tuple(opts.skip_layers),
                  numerics=opts.numerics, weight_scale=opts.weight_scale, int8_ops=opts.int8_ops,
                  reduce_range=opts.reduce_range, weight_bits=7 if resolve_reduce_range(opts.reduce_range) else 8,
                  float_layers=tuple(names), float_layer_indices=tuple(indices), psnr=score["psnr"], drop_db=drop,
                  ms=score["ms"], speedup=s.ref["ms"] / score["ms"], meets=s.meets(drop, score["fidelity"]),
                  fidelity_db=score["fidelity"], **tag)
    log.info("target-drop trial: %s %s %s, %d-bit %s, %d float layers: %+.3f dB%s, %.2fx fp32%s", opts.numerics,
             opts.quant, "per-channel" if opts.per_channel else "per-tensor", trial.weight_bits,
             opts.weight_scale if opts.numerics == VACC_NUMERICS else opts.int8_ops, len(names),
             drop, "" if score["fidelity"] is None else f" (fidelity {score['fidelity']:.2f} dB)", trial.speedup,
             " (meets the target)" if trial.meets else "")
    return trial


def _choose(trials: list[Trial]) -> Trial:
    """Among trials meeting the target, the accuracy-first choice (of the default-build trials when
    one meets it: fewest float layers, then smallest drop), unless a trial is at least ``SPEED_GAIN``
    times faster (then the fastest such); none meeting it: the smallest drop (with a fidelity target:
    the highest fidelity). Faster-build trials carry a ``variant``."""
    met = [t for t in trials if t.meets]
    if not met:
        return max(trials, key=lambda t: t.drop_db if t.fidelity_db is None else t.fidelity_db)
    first = min([t for t in met if t.variant is None] or met, key=lambda t: (len(t.float_layers), -t.drop_db))
    faster = [t for t in met if t.speedup >= SPEED_GAIN * first.speedup]
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


def _grow(try_k: Callable[[int], Trial], limit: int) -> None:
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


def _run_search(up: Upstream, req: ModelRequest, pairs: list) -> dict[str, Any]:
    from vacc_deploy.evaluation.analysis import ranked_layers
    from vacc_deploy.pipeline.analysis import analysis_stage

    target, limit = req.build.target_drop, req.build.max_float_layers
    base = dataclasses.replace(req.build, precision="int8", target_drop=None, target_fidelity=None,
                               max_float_layers=None)
    t0 = time.perf_counter()
    s = _Setup(up, req, pairs, target, req.build.target_fidelity)
    s = dataclasses.replace(s, ref=_score(s, req.with_precision("fp32")))
    trials = [_trial(s, opts) for opts in first_trials(base)]
    ranking: list[str] = []
    greedy: list[dict[str, Any]] = []
    best = _choose(trials)
    if not best.meets:
        best_opts = dataclasses.replace(base, quant=best.quant, per_channel=best.per_channel,
                                        weight_scale=best.weight_scale)
        if base.numerics == VACC_NUMERICS:
            greedy = vacc_rank.ranking(up, best_opts, limit)
            ranking = [g["layer"] for g in greedy]
        else:
            built = build_stage(up, dataclasses.replace(req, build=best_opts))
            analysis, _, _ = analysis_stage(up, built, images=ANALYSIS_IMAGES, progress=False)
            ranking = [r["layer"] for r in ranked_layers(analysis)]

        def try_k(k: int) -> Trial:
            opts = dataclasses.replace(best_opts, skip_layers=tuple(base.skip_layers) + tuple(ranking[:k]))
            trials.append(_trial(s, opts, k=k))
            return trials[-1]

        _grow(try_k, len(ranking) if limit is None else min(limit, len(ranking)))
        if base.numerics == VACC_NUMERICS and not _choose(trials).meets:
            best = _choose(trials)
            trials += [_trial(s, o, refine=True) for o in vacc_rank.refinements(
                base, METHODS, per_channel=best.per_channel, skip_layers=best.skip_layers,
                tried=(best.quant, best.weight_scale))]
    best = _choose(trials)
    best_opts = dataclasses.replace(base, quant=best.quant, per_channel=best.per_channel,
                                    weight_scale=best.weight_scale, skip_layers=tuple(best.skip_layers))
    trials += [_trial(s, dataclasses.replace(best_opts, **v), variant=v) for v in fast_variants(base)]
    chosen = _choose(trials)
    return {"format": SEARCH_FORMAT, "row": up.config.name, "target_drop_db": target, "margin": MARGIN,
            "target_fidelity_db": s.fidelity, "fidelity_margin": FIDELITY_MARGIN, "max_float_layers": limit,
            "validation": {"folder": str(req.calib.images), "images": [p.name for p in pairs]},
            "fp32": s.ref, "trials": [t.to_dict() for t in trials], "ranking": ranking,
            "ranking_fidelity_db": greedy, "chosen": chosen.to_dict(), "met": chosen.meets,
            "seconds": time.perf_counter() - t0}


def search_stage(up: Upstream, req: ModelRequest) -> tuple[dict[str, Any], Path, bool]:
    """Run (or reuse) the ``--target-drop`` / ``--target-fidelity`` search for ``req`` on the
    artifacts ``up``; returns (result, JSON path, reused). Raises UsageError (options
    ``calib_images``, ``target_drop``, ``target_fidelity``, ``max_float_layers``) without
    calibration images, without a target, or with a negative or non-finite one."""
    req = _searchable(req)
    b = req.build
    if up.calib is None or req.calib.images is None:
        raise UsageError("the search needs calibration images (none given)", option="calib_images")
    if (b.target_drop is None and b.target_fidelity is None) or (
            b.target_drop is not None and not 0 <= b.target_drop < np.inf):
        raise UsageError(f"{b.target_drop}: expected a drop in dB >= 0, e.g. 0.1", option="target_drop")
    if b.target_fidelity is not None and not 0 < b.target_fidelity < np.inf:
        raise UsageError(f"{b.target_fidelity}: expected a fidelity PSNR in dB > 0, e.g. 40",
                         option="target_fidelity")
    if b.max_float_layers is not None and b.max_float_layers < 0:
        raise UsageError(f"{b.max_float_layers}: must be >= 0", option="max_float_layers")
    pairs = validation_pairs(req.calib.images, seed=req.calib.seed)
    key = artifacts.stage_key({
        "format": SEARCH_FORMAT, "build_format": BUILD_FORMAT, "model": up.exported.onnx_path.parent.name,
        "calib": up.calib.sha256, "validation": [str(p.hr_path) for p in pairs],
        "target": b.target_drop, "margin": MARGIN, "max_float": b.max_float_layers,
        **({} if b.target_fidelity is None else {"fidelity": b.target_fidelity, "fidelity_margin": FIDELITY_MARGIN}),
        "options": _options_key(b),
        "x86_without_vnni": machine.x86_without_vnni(),
        "versions": machine.tool_versions()})
    name = "".join(f"{tag}{v:g}-" for tag, v in (("drop", b.target_drop), ("fid", b.target_fidelity)) if v is not None)
    path = artifacts.row_workdir(up.config.name, up.workdir) / "search" / f"{name}{key}.json"
    result, reused = cached_json(path, lambda: _run_search(up, req, pairs))
    return result, path, reused


def _searchable(req: ModelRequest) -> ModelRequest:
    """The request whose trials the search runs: a ``--backend vacc`` one on its emulation (ONNX
    Runtime, vacc numerics), an ``auto`` one on ONNX Runtime (its fallback; there is no ``auto``
    session)."""
    if req.backend == VACC:
        return dataclasses.replace(req, backend=DEFAULT_BACKEND).with_build(numerics=VACC_NUMERICS)
    return dataclasses.replace(req, backend=DEFAULT_BACKEND) if req.backend == AUTO else req


def _options_key(b: BuildOptions) -> dict[str, Any]:
    """The build options that identify a search (the searched ones normalized; the vacc fields only
    for the vacc numerics, so onnxruntime searches keep their earlier keys)."""
    opts = dataclasses.asdict(dataclasses.replace(b, precision="int8", quant=None, per_channel=True,
                                                  weight_scale=BuildOptions.weight_scale))
    del opts["target_fidelity"]  # in the search key on its own, so searches without one keep their keys
    if b.numerics != VACC_NUMERICS:
        del opts["numerics"], opts["weight_scale"]
    else:
        opts["vacc_search"] = 7  # 6: greedy ranking (one or two adjacent convs) on the emulation; 7: refine
    return opts


def chosen_request(req: ModelRequest, result: dict[str, Any]) -> ModelRequest:
    """``req`` with its targets replaced by the build options a search ``result`` chose
    (method, per-channel, layers kept in float, op types quantized, 7-bit weights)."""
    c = result["chosen"]
    opts = dataclasses.replace(req.build, quant=c["quant"], per_channel=c["per_channel"],
                               weight_scale=c.get("weight_scale", req.build.weight_scale),
                               skip_layers=tuple(c["skip_layers"]), int8_ops=c["int8_ops"],
                               reduce_range=c["reduce_range"], target_drop=None, target_fidelity=None,
                               max_float_layers=None)
    return dataclasses.replace(req, build=opts)
