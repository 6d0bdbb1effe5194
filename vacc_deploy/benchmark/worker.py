"""One benchmark configuration (backend × built model) measured in a fresh Python process, so that
its peak RSS is its own (``ru_maxrss`` is process-wide and monotonic, see :mod:`vacc_deploy.benchmark.measure`).

The parent builds the model (export, calibration, quantization: cached) and calls :func:`run_job`,
which runs ``python -m vacc_deploy.benchmark.worker JOB.json RESULT.json``. The worker opens a session,
calls :func:`vacc_deploy.benchmark.measure.measure` on it and, with an image, times the image end to end. It
imports torch only for the torch backend. Errors come back as typed :class:`VaccError`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vacc_deploy import errors
from vacc_deploy.errors import VaccError
from vacc_deploy.types import DEFAULT_ITERS, DEFAULT_OVERLAP, DEFAULT_WARMUP


@dataclass(frozen=True)
class BenchJob:
    """What the worker measures. ``row``: a row name or YAML path (as given to ``load_row``);
    ``onnx_path``: the built model (fixed-shape backends); ``weights``: the checkpoint argument
    (torch backend); ``input_shape``: the benchmark input (N, C, H, W); ``spec_json``: the model's
    :class:`~vacc_deploy.spec.ModelSpec`; ``image``: optional LR image for the end-to-end time."""

    backend: str
    row: str
    input_shape: tuple[int, int, int, int]
    spec_json: str
    onnx_path: str | None = None
    weights: str | None = None
    threads: int | None = None
    iters: int = DEFAULT_ITERS
    warmup: int = DEFAULT_WARMUP
    image: str | None = None
    overlap: int = DEFAULT_OVERLAP
    seed: int = 0


def _open(job: BenchJob):
    from vacc_deploy.backends import BuiltModel, SessionOptions, get_backend
    from vacc_deploy.config import load_row
    from vacc_deploy.spec import ModelSpec

    backend = get_backend(job.backend)
    built = BuiltModel(row=job.row, spec=ModelSpec.from_json(job.spec_json), input_shape=job.input_shape,
                       weights=job.weights, onnx_path=Path(job.onnx_path) if job.onnx_path else None,
                       config=load_row(job.row) if backend.artifact == "module" else None)
    return built, backend.open(built, SessionOptions(threads=job.threads))


def end_to_end_images(path: Path, scale: int) -> list[Path]:
    """The LR images ``--image`` names: the file itself; for a folder in an evaluation layout
    (``find_pairs``, e.g. Set14), its LR images at ``scale``; else every image in the folder."""
    from vacc_deploy.errors import DatasetError
    from vacc_deploy.imaging.datasets import find_pairs, images_at

    if path.is_dir():
        try:
            lr = [p.lr_path for p in find_pairs(path, scale) if p.lr_path is not None]
        except DatasetError:
            lr = []
        if lr:
            return lr
    return images_at(path, "image")


def measure_job(job: BenchJob) -> dict[str, Any]:
    """Open the session and measure it (in this process). Returns :func:`bench.measure`'s dict plus
    ``session_open_ms``, ``cpu_probe_ms`` {before, after} (see :func:`bench.cpu_probe_ms`),
    ``torch_imported`` and, with ``job.image``, ``end_to_end``."""
    import numpy as np

    from vacc_deploy.benchmark import measure as bench

    probe_before = bench.cpu_probe_ms()
    t0 = time.perf_counter()
    built, session = _open(job)
    open_ms = (time.perf_counter() - t0) * 1e3
    rng = np.random.default_rng(job.seed)
    x = (rng.random(job.input_shape, dtype=np.float32) * built.spec.value_range).astype(np.float32)
    result = bench.measure(session, x, job.iters, job.warmup)
    result["session_open_ms"] = open_ms
    if job.image:
        from vacc_deploy.imaging.io import read_image
        from vacc_deploy.evaluation.upscaler import Upscaler

        images = [read_image(p).rgb for p in end_to_end_images(Path(job.image), built.spec.scale)]
        up = Upscaler(session, built.spec, job.overlap)
        result["end_to_end"] = bench.end_to_end(up, images, result["latency_ms"]["p50"], min(3, job.iters))
        result["peak_rss_mb"] = bench.peak_rss_mb()
    result["cpu_probe_ms"] = {"before": probe_before, "after": bench.cpu_probe_ms()}
    result["torch_imported"] = "torch" in sys.modules
    return result


def run_job(job: BenchJob, timeout_s: float | None = None) -> dict[str, Any]:
    """Run :func:`measure_job` in a fresh ``python -m vacc_deploy.benchmark.worker`` process and return
    its result. A :class:`VaccError` in the worker is raised again here with its type and message."""
    with tempfile.TemporaryDirectory(prefix="vacc-bench-") as tmp:
        job_path, out_path = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job_path.write_text(json.dumps(asdict(job)))
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parent.parent.parent)  # the folder holding vacc_deploy/
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        proc = subprocess.run([sys.executable, "-m", "vacc_deploy.benchmark.worker", str(job_path), str(out_path)],
                              env=env, capture_output=True, text=True, timeout=timeout_s)
        if not out_path.exists():
            tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
            raise VaccError(f"benchmark worker for {job.backend} failed (exit {proc.returncode}): {tail[0][:300]}")
        data = json.loads(out_path.read_text())
    if "error" in data:
        cls = getattr(errors, data.get("type", ""), VaccError)
        kind = cls if isinstance(cls, type) and issubclass(cls, VaccError) else VaccError
        raise kind(data["error"], option=data.get("option"))
    return data


def main(argv: list[str] | None = None) -> int:
    """``python -m vacc_deploy.benchmark.worker JOB.json RESULT.json``: exit 0, or 1 with the error in
    RESULT.json as ``{"error", "type", "option"}``."""
    job_path, out_path = (argv or sys.argv[1:])[:2]
    raw = json.loads(Path(job_path).read_text())
    raw["input_shape"] = tuple(raw["input_shape"])
    try:
        data: dict[str, Any] = measure_job(BenchJob(**raw))
        code = 0
    except VaccError as exc:
        data, code = {"error": str(exc), "type": type(exc).__name__, "option": exc.option}, 1
    Path(out_path).write_text(json.dumps(data))
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
