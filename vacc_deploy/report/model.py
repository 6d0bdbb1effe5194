"""The report's input contract: :class:`ReportData`, plain and JSON-serializable (``report.json``).

Whoever runs the stages fills a ``ReportData``; :mod:`vacc_deploy.report.render` turns it into
``report.md`` / ``report.html``. Nothing here imports torch or runs a model.

Image fields (``benchmark_plot`` and the crop images) are PNG file paths. In ``report.json`` they are
relative to the report folder (``assets/...``); :meth:`ReportData.load` resolves them against the
folder the JSON file is in, so a report folder can be moved and re-rendered.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from vacc_deploy.artifacts import atomic_write_json, read_json
from vacc_deploy.errors import UsageError

PROVENANCES = ("official", "synthetic", "house", "file")
STAGE_STATUSES = ("done", "reused", "skipped")
CROP_IMAGES = ("lr", "fp32", "int8", "hr", "heatmap")


@dataclass
class CropSet:
    """Crops of one of the worst images (largest int8-vs-fp32 PSNR drop).

    ``lr`` (nearest-upscaled to the HR crop size), ``fp32``, ``int8``, ``hr``: PNG paths of the same
    HR-pixel window; ``heatmap``: PNG path of |int8 - fp32| over that window. ``window`` is
    ``[y, x, h, w]`` in HR pixels; ``psnr_drop`` = fp32 PSNR - int8 PSNR (dB) on the whole image;
    ``max_abs`` = the largest |int8 - fp32| in the window (uint8 levels).
    """

    image: str
    precision: str = "int8"
    quant: str | None = None
    backend: str | None = None
    psnr_drop: float | None = None
    max_abs: float | None = None
    window: list[int] = field(default_factory=list)
    lr: str | None = None
    fp32: str | None = None
    int8: str | None = None
    hr: str | None = None
    heatmap: str | None = None


@dataclass
class BuildInfo:
    """One build: ``precision`` (fp32/fp16/int8), ``quant`` (calibration method or None), the build
    ``settings`` (dict), its ``manifest`` (dict: hashes, versions, timings) and the vamc YAML text
    (None when no VACC build was written)."""

    precision: str
    quant: str | None = None
    backend: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)
    vamc_yaml: str | None = None


@dataclass
class StageInfo:
    """A pipeline stage: ``status`` is "done" (ran now), "reused" (inputs unchanged) or "skipped" (not
    part of this run, e.g. the benchmark of a run without one); ``seconds``."""

    stage: str
    status: str = "done"
    seconds: float | None = None


@dataclass
class ReportData:
    """Everything a report shows. All fields are JSON-serializable.

    - ``row``, ``description``: the model row and a one-line description.
    - ``weights``: label of the weights (e.g. "official", a file name); ``provenance``: one of
      "official", "synthetic" (random weights: plumbing only), "house" (house weights, not the
      official checkpoint), "file" (a user checkpoint); ``weights_sha256``: the weights file's
      sha256 (None for synthetic weights). ``description`` says what the row is, never which
      weights ran (that is these fields).
    - ``scale``; ``input_shape``/``output_shape`` as [N, C, H, W]; ``flops_g`` (GFLOPs per
      inference at ``input_shape``), ``params_m`` (millions of parameters).
    - ``eval``: the eval result dict (SPEC section 6) or None; ``benchmark``: the benchmark dict
      (SPEC section 6) or None; ``benchmark_plot``: PNG path or None (one is drawn when None).
    - ``analysis``: an int8 layer analysis (:mod:`vacc_deploy.pipeline.analysis`) or None, with its
      plot ``analysis_plot`` (PNG path or None).
    - ``crops``, ``builds``, ``stages``: see :class:`CropSet`, :class:`BuildInfo`, :class:`StageInfo`.
    - ``manifest``: the run manifest (``versions``, ``hashes``, ``timings``, anything else).
    - ``notes``: free-form lines shown near the top; ``created``: a timestamp string.
    """

    row: str
    description: str = ""
    weights: str = "official"
    provenance: str = "official"
    weights_sha256: str | None = None
    scale: int | None = None
    input_shape: list[int] | None = None
    output_shape: list[int] | None = None
    flops_g: float | None = None
    params_m: float | None = None
    eval: dict[str, Any] | None = None
    benchmark: dict[str, Any] | None = None
    benchmark_plot: str | None = None
    crops: list[CropSet] = field(default_factory=list)
    analysis: dict[str, Any] | None = None
    analysis_plot: str | None = None
    builds: list[BuildInfo] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)
    stages: list[StageInfo] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    created: str | None = None

    def __post_init__(self) -> None:
        if self.provenance not in PROVENANCES:
            raise UsageError(f"report: provenance must be one of {', '.join(PROVENANCES)}, "
                             f"got {self.provenance!r}")
        for st in self.stages:
            if st.status not in STAGE_STATUSES:
                raise UsageError(f"report: stage {st.stage!r} status must be one of {', '.join(STAGE_STATUSES)}, "
                                 f"got {st.status!r}")

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (JSON-serializable)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReportData:
        """Build from a plain dict; unknown keys are errors (one line naming the key)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown or "row" not in d:
            what = f"unknown key {unknown[0]!r}" if unknown else "missing key 'row'"
            raise UsageError(f"report.json: {what}")
        kw = dict(d)
        kw["crops"] = [_build(CropSet, c, "crops") for c in d.get("crops") or []]
        kw["builds"] = [_build(BuildInfo, b, "builds") for b in d.get("builds") or []]
        kw["stages"] = [_build(StageInfo, s, "stages") for s in d.get("stages") or []]
        return cls(**kw)

    def save(self, path: Path) -> None:
        """Write as JSON (atomically)."""
        atomic_write_json(Path(path), self.to_dict())

    @classmethod
    def load(cls, path: Path) -> ReportData:
        """Read ``report.json``; relative image paths are resolved against its folder."""
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"{path}: no such report file (expected a report.json written by a run)")
        try:
            raw = read_json(path)
        except ValueError as exc:
            raise UsageError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(raw, dict):
            raise UsageError(f"{path}: expected a JSON object")
        data = cls.from_dict(raw)
        data.map_images(lambda p: str(path.parent / p) if not Path(p).is_absolute() else p)
        return data

    def map_images(self, fn: Any) -> None:
        """Replace every image path ``p`` (benchmark plot, crops) by ``fn(p)`` in place."""
        if self.benchmark_plot:
            self.benchmark_plot = fn(self.benchmark_plot)
        if self.analysis_plot:
            self.analysis_plot = fn(self.analysis_plot)
        for crop in self.crops:
            for name in CROP_IMAGES:
                if getattr(crop, name):
                    setattr(crop, name, fn(getattr(crop, name)))


def _build(cls: type, d: Any, key: str) -> Any:
    if not isinstance(d, dict):
        raise UsageError(f"report.json: {key}: expected objects, got {type(d).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise UsageError(f"report.json: {key}: unknown key {unknown[0]!r}")
    return cls(**d)
