"""``--target-drop`` / ``--target-fidelity``: find the int8 build that stays within a PSNR drop of
fp32, and/or whose output stays within a fidelity PSNR of fp32's output, with the fewest layers in
float. Torch-free.

A trial meets a drop target when its drop on the validation pairs is within ``MARGIN`` times it
(or, with a reference PSNR, when the drop predicted for images on which fp32 reaches that PSNR,
from the validation images' int8 noise, is within the target:
:func:`vacc_deploy.evaluation.protocols.drop_at_psnr`; the same int8 noise costs more dB where fp32
is better, so a drop measured on the validation images does not transfer to a cleaner evaluation
set, and the prediction does), and a fidelity target when its fidelity PSNR on them (RGB, pooled over the images, as ``eval``
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
import hashlib
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from vacc_deploy import artifacts, machine
from vacc_deploy.backends import AUTO, DEFAULT_BACKEND, BuildOptions, SessionOptions
from vacc_deploy.backends.ort import VACC_NUMERICS
from vacc_deploy.backends.ort.build import BUILD_FORMAT
from vacc_deploy.backends.ort.layers import float_layers
from vacc_deploy.backends.ort.options import resolve_reduce_range
from vacc_deploy.backends.vacc import NAME as VACC
from vacc_deploy.errors import UsageError
from vacc_deploy.evaluation.protocols import drop_at_psnr
from vacc_deploy.evaluation.upscaler import Upscaler
from vacc_deploy.pipeline import vacc_rank
from vacc_deploy.pipeline.cache import cached_json
from vacc_deploy.pipeline.requests import ModelRequest
from vacc_deploy.pipeline.stages import Upstream, build_stage, card_graph_stage, open_upscaler
from vacc_deploy.pipeline.trials import (FIDELITY_MARGIN, MARGIN, METHODS, SPEED_GAIN, Targets, Trial, choose,
                                         fast_variants, first_trials, grow)

# the search's rules live in pipeline.trials; re-exported for callers of the search
__all__ = ["FIDELITY_MARGIN", "MARGIN", "METHODS", "SPEED_GAIN", "Targets", "Trial", "choose", "chosen_request",
           "fast_variants", "first_trials", "grow", "search_stage", "validation_pairs"]

SEARCH_FORMAT = 5  # 5: vacc ranking from the emulated build
VAL_IMAGES = 12
SPEED_RUNS = 10
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
    pairs, the targets, the fp32 candidate (its upscaler remembers its outputs when fidelity is
    scored: every trial compares with the same fp32 outputs) and its score."""

    up: Upstream
    req: ModelRequest
    pairs: list
    targets: Targets
    fp32: Any = None
    ref: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class _RememberingUpscaler(Upscaler):
    """An upscaler that runs each distinct input once and then hands out (a copy of) the
    remembered output."""

    seen: dict = dataclasses.field(default_factory=dict, repr=False)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        key = (rgb.shape, hashlib.blake2b(rgb.tobytes(), digest_size=16).digest())
        if key not in self.seen:
            self.seen[key] = super().__call__(rgb)
        return self.seen[key].copy()


def _candidate(s: _Setup, req: ModelRequest, *, remember: bool = False) -> tuple[Any, Any]:
    from vacc_deploy.evaluation.protocols import Candidate

    built = build_stage(s.up, req)
    up = open_upscaler(built, req.backend, SessionOptions())
    if remember:
        up = _RememberingUpscaler(up.session, up.spec, up.overlap)
    return built, Candidate(built.precision, built.quant, req.backend, up, built.input_shape[2:])


def _score(s: _Setup, built: Any, cand: Any) -> dict[str, Any]:
    """Mean validation PSNR (Y, standard protocol), the PSNR per image, fidelity PSNR to fp32 (RGB,
    pooled; only with a fidelity target, else None) and p50 latency (ms; 2 untimed runs, then
    ``SPEED_RUNS`` timed ones of a fixed random input) of the model ``built`` run as ``cand``."""
    from vacc_deploy.benchmark.measure import measure
    from vacc_deploy.evaluation.protocols import evaluate

    fp32 = [s.fp32] if s.targets.fidelity is not None and cand is not s.fp32 else []
    res = evaluate(s.pairs, [*fp32, cand], row=s.up.config.name, dataset=Path("."), scale=built.spec.scale,
                   progress=False)
    mine = res["results"][-1]
    x = np.random.default_rng(0).random(built.input_shape, dtype=np.float32)
    timing = measure(cand.upscaler.session, x, iters=SPEED_RUNS, warmup=1)
    per_image = {r["image"]: r["psnr"] for r in res["per_image"] if r["precision"] == built.precision}
    return {"psnr": mine["psnr"], "per_image": per_image, "fidelity": mine["fidelity_psnr"] if fp32 else None,
            "ms": timing["latency_ms"]["p50"]}


def _trial(s: _Setup, opts: BuildOptions, **tag: Any) -> Trial:
    score = _score(s, *_candidate(s, dataclasses.replace(s.req, build=opts)))
    names, indices = float_layers(s.up.exported.onnx_path, opts)
    drop = score["psnr"] - s.ref["psnr"]
    ref_psnr = s.targets.reference_psnr
    predicted = None if ref_psnr is None else drop_at_psnr(s.ref["per_image"], score["per_image"], ref_psnr)
    trial = Trial(quant=opts.quant, per_channel=opts.per_channel, skip_layers=tuple(opts.skip_layers),
                  numerics=opts.numerics, weight_scale=opts.weight_scale, int8_ops=opts.int8_ops,
                  reduce_range=opts.reduce_range, weight_bits=7 if resolve_reduce_range(opts.reduce_range) else 8,
                  float_layers=tuple(names), float_layer_indices=tuple(indices), psnr=score["psnr"], drop_db=drop,
                  ms=score["ms"], speedup=s.ref["ms"] / score["ms"],
                  meets=s.targets.meets(drop, score["fidelity"], predicted), fidelity_db=score["fidelity"],
                  predicted_drop_db=predicted, **tag)
    extra = (f" ({predicted:+.3f} dB at {ref_psnr:g} dB)" if predicted is not None else "") + (
        f" (fidelity {score['fidelity']:.2f} dB)" if score["fidelity"] is not None else "")
    log.info("target-drop trial: %s %s %s, %d-bit %s, %d float layers: %+.3f dB%s, %.2fx fp32%s", opts.numerics,
             opts.quant, "per-channel" if opts.per_channel else "per-tensor", trial.weight_bits,
             opts.weight_scale if opts.numerics == VACC_NUMERICS else opts.int8_ops, len(names),
             drop, extra, trial.speedup,
             " (meets the target)" if trial.meets else "")
    return trial


def _run_search(up: Upstream, req: ModelRequest, pairs: list) -> dict[str, Any]:
    from vacc_deploy.evaluation.analysis import ranked_layers
    from vacc_deploy.pipeline.analysis import analysis_stage

    target, limit = req.build.target_drop, req.build.max_float_layers
    base = dataclasses.replace(req.build.without_targets(), precision="int8")
    t0 = time.perf_counter()
    s = _Setup(up, req, pairs, Targets(target, req.build.target_fidelity, req.build.reference_psnr))
    fp32_built, fp32 = _candidate(s, req.with_precision("fp32"), remember=s.targets.fidelity is not None)
    s = dataclasses.replace(s, fp32=fp32)
    s = dataclasses.replace(s, ref=_score(s, fp32_built, fp32))
    trials = [_trial(s, opts) for opts in first_trials(base)]
    ranking: list[str] = []
    greedy: list[dict[str, Any]] = []
    best = choose(trials)
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

        grow(try_k, len(ranking) if limit is None else min(limit, len(ranking)))
        if base.numerics == VACC_NUMERICS and not choose(trials).meets:
            best = choose(trials)
            trials += [_trial(s, o, refine=True) for o in vacc_rank.refinements(
                base, METHODS, per_channel=best.per_channel, skip_layers=best.skip_layers,
                tried=(best.quant, best.weight_scale))]
    best = choose(trials)
    best_opts = dataclasses.replace(base, quant=best.quant, per_channel=best.per_channel,
                                    weight_scale=best.weight_scale, skip_layers=tuple(best.skip_layers))
    trials += [_trial(s, dataclasses.replace(best_opts, **v), variant=v) for v in fast_variants(base)]
    chosen = choose(trials)
    return {"format": SEARCH_FORMAT, "row": up.config.name, "target_drop_db": target, "margin": MARGIN,
            "target_fidelity_db": s.targets.fidelity, "fidelity_margin": FIDELITY_MARGIN,
            "reference_psnr_db": s.targets.reference_psnr, "max_float_layers": limit,
            "validation": {"folder": str(req.calib.images), "images": [p.name for p in pairs]},
            "fp32": s.ref, "trials": [t.to_dict() for t in trials], "ranking": ranking,
            "ranking_fidelity_db": greedy, "chosen": chosen.to_dict(), "met": chosen.meets,
            "seconds": time.perf_counter() - t0}


#: ``reference_psnr`` value that asks for the drop on the validation images (``--reference-psnr off``).
OFF = 0.0


def search_stage(up: Upstream, req: ModelRequest) -> tuple[dict[str, Any], Path, bool]:
    """Run (or reuse) the ``--target-drop`` / ``--target-fidelity`` search for ``req`` on the
    artifacts ``up``; returns (result, JSON path, reused). A drop is judged where fp32 reaches
    ``reference_psnr``: by default, with the official weights, the row's paper Set5 PSNR
    (:attr:`vacc_deploy.config.RowConfig.reference_psnr`); on the validation images (with the margin) with other
    weights, for a row without one, or with :data:`OFF`. Raises UsageError (options
    ``calib_images``, ``target_drop``, ``target_fidelity``, ``max_float_layers``) without
    calibration images, without a target, or with a negative or non-finite one."""
    req = _searchable(req)
    b = req.build
    if b.numerics == VACC_NUMERICS:
        up = card_graph_stage(up)  # trials, ranking and skip indices all count this graph's convs
    if up.calib is None or req.calib.images is None:
        raise UsageError("the search needs calibration images (none given)", option="calib_images")
    if (b.target_drop is None and b.target_fidelity is None) or (
            b.target_drop is not None and not 0 <= b.target_drop < np.inf):
        raise UsageError(f"{b.target_drop}: expected a drop in dB >= 0, e.g. 0.1", option="target_drop")
    if b.reference_psnr is not None and (b.target_drop is None or not 0 <= b.reference_psnr < np.inf):
        raise UsageError(f"{b.reference_psnr}: a reference PSNR (dB > 0, or off) applies to a drop target only",
                         option="reference_psnr")
    paper = up.config.reference_psnr if up.weights.kind == "official" else None  # the paper's weights only
    if b.target_drop is not None and b.reference_psnr is None and paper is not None:
        req = req.with_build(reference_psnr=paper)
    elif b.reference_psnr == OFF:
        req = req.with_build(reference_psnr=None)  # judged on the validation images, with the margin
    b = req.build
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
        **({} if b.reference_psnr is None else {"reference_psnr": b.reference_psnr}),
        "options": _options_key(b),
        "x86_without_vnni": machine.x86_without_vnni(),
        "versions": machine.tool_versions()})
    name = "".join(f"{tag}{v:g}-" for tag, v in (("drop", b.target_drop), ("at", b.reference_psnr),
                                                 ("fid", b.target_fidelity)) if v is not None)
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
    del opts["target_fidelity"], opts["reference_psnr"]  # in the key on their own: earlier keys stay valid
    if b.numerics != VACC_NUMERICS:
        del opts["numerics"], opts["weight_scale"]
    else:
        opts["vacc_search"] = 9  # 6: greedy ranking (one or two adjacent convs) on the emulation; 7: refine;
        # 8: on the card graph (identity 1x1 convs as bias adds); 9: no speed rule in the choice
    return opts


def chosen_request(req: ModelRequest, result: dict[str, Any]) -> ModelRequest:
    """``req`` with its targets replaced by the build options a search ``result`` chose
    (method, per-channel, layers kept in float, op types quantized, 7-bit weights)."""
    c = result["chosen"]
    opts = dataclasses.replace(req.build.without_targets(), quant=c["quant"], per_channel=c["per_channel"],
                               weight_scale=c.get("weight_scale", req.build.weight_scale),
                               skip_layers=tuple(c["skip_layers"]), int8_ops=c["int8_ops"],
                               reduce_range=c["reduce_range"])
    return dataclasses.replace(req, build=opts)
