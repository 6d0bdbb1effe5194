"""The trainer: L1 loss, Adam, random patches, resumable, validation PSNR logged as it goes.

``train(options)`` builds the row's network with :func:`vacc_deploy.models.create_model`-compatible
parameter names (the family's ``build``), optionally warm-started (``warm_start``: the family's
initialisation that computes bilinear upscaling, :mod:`vacc_deploy.training.warm_start`) and then
initialised from a checkpoint (``init``: every entry whose name and shape match is copied, the rest
keep their initial values), and
trains until ``minutes`` of wall time (this invocation) or ``max_steps`` (total) are reached. The
learning rate is constant, multiplied by ``decay_factor`` after ``decay_at`` of this invocation's
time budget.

Files in ``out`` (each written atomically): ``state.pt`` (resumable; an existing one is resumed),
``checkpoint.pt`` (official key layout, float32, loads strictly with ``create_model``) and
``train_log.json`` (options, steps, time, validation PSNR history).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from vacc_deploy import artifacts

from vacc_deploy import machine
from vacc_deploy.config import RowConfig, load_row
from vacc_deploy.imaging.io import to_uint
from vacc_deploy.models import family_of, load_checkpoint, row_params, row_spec
from vacc_deploy.imaging.processing import from_network, to_network
from vacc_deploy.spec import ModelSpec
from vacc_deploy.training import data
from vacc_deploy.training.baseline import bicubic_upscale, mean_psnr
from vacc_deploy.training.state import cpu_state_dict, load_state, save_state, save_torch
from vacc_deploy.training.warm_start import warm_start

log = logging.getLogger(__name__)


class TrainOptions(BaseModel):
    """What ``scripts/train.py`` passes (unknown keys rejected)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    row: str
    images: list[Path]
    out: Path
    minutes: float = Field(gt=0)
    max_steps: int | None = Field(None, gt=0)
    degrade: Literal["bicubic", "bsrgan", "blur"] | None = None  # None: blur for scale 1, else bicubic
    init: Path | None = None
    warm_start: bool = False  # start from the family's warm start (training/warm_start.py), before ``init``
    val: Path | None = None
    n_val: int = Field(4, ge=0)  # held out of the first ``images`` folder when ``val`` is None
    patch: int = Field(48, gt=0)
    batch: int = Field(16, gt=0)
    lr: float = Field(2e-4, gt=0)
    decay_at: float = Field(0.8, gt=0, le=1)
    decay_factor: float = Field(0.25, gt=0, le=1)
    val_every_s: float = Field(180.0, gt=0)
    seed: int = 0
    threads: int = Field(1, gt=0)
    device: str = "auto"
    command: str = ""  # the command line that started the run (recorded in train_log.json)


@dataclass
class TrainResult:
    """Where the checkpoint is, and how training went."""

    checkpoint: Path
    step: int
    elapsed_s: float
    history: list[dict[str, Any]] = field(default_factory=list)
    val_bicubic_psnr: float | None = None


def pick_device(name: str) -> torch.device:
    """``auto``: CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def init_from(model: torch.nn.Module, path: Path, config: RowConfig) -> list[str]:
    """Copy every entry of the checkpoint at ``path`` whose name and shape match; return the names
    of the model's entries left at their initial values."""
    src = load_checkpoint(path, config)  # .pt/.pth (official layout) or house .safetensors
    own = model.state_dict()
    kept = {k: v for k, v in src.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    model.load_state_dict({**own, **kept}, strict=True)
    return [k for k in own if k not in kept]


@torch.no_grad()
def super_resolve(model: torch.nn.Module, lr: np.ndarray, spec: ModelSpec, device: torch.device) -> np.ndarray:
    """Run a uint8 RGB LR image through the model (edge-padded to the size multiple); uint8 RGB out."""
    h, w = lr.shape[:2]
    m = spec.size_multiple
    padded = np.pad(lr, ((0, -h % m), (0, -w % m), (0, 0)), mode="edge")
    x = torch.from_numpy(to_network(padded.astype(np.float32) / 255.0, spec)).to(device)
    out = from_network(model(x).cpu().numpy(), spec)[: h * spec.scale, : w * spec.scale]
    return to_uint(out, 8, spec.output_conversion)


@dataclass
class _Run:
    """Everything a training run holds while it runs."""

    opts: TrainOptions
    config: RowConfig
    spec: ModelSpec
    device: torch.device
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    sampler: data.PatchSampler
    val_pairs: list[tuple[np.ndarray, np.ndarray]]
    rng: np.random.Generator
    step: int = 0
    elapsed_s: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    val_names: list[str] = field(default_factory=list)

    def validate(self) -> float | None:
        """Mean validation Y PSNR of the current model (None without validation images)."""
        if not self.val_pairs:
            return None
        self.model.eval()
        outs = [super_resolve(self.model, lr, self.spec, self.device) for lr, _ in self.val_pairs]
        self.model.train()
        return mean_psnr(outs, [hr for _, hr in self.val_pairs], self.spec)

    def save(self, out: Path) -> None:
        """Write ``state.pt``, ``checkpoint.pt`` and ``train_log.json``."""
        save_state(out / "state.pt", self.config.name, self.step, self.elapsed_s, self.model, self.optimizer,
                   self.rng.bit_generator.state, self.history)
        save_torch(out / "checkpoint.pt", cpu_state_dict(self.model))
        artifacts.atomic_write_json(out / "train_log.json", {
            "row": self.config.name, "step": self.step, "elapsed_s": round(self.elapsed_s, 1),
            "options": self.opts.model_dump(mode="json"), "history": self.history,
            "device": str(self.device), "torch": torch.__version__, "machine": machine.machine(),
            "train_images": len(self.sampler.hr), "val_images": self.val_names})


def _val_files(opts: TrainOptions) -> tuple[list[Path], list[Path]]:
    """(train, validation) files: ``val``'s images, or a seeded hold-out from the first folder."""
    files = data.image_files(list(opts.images))
    if opts.val is not None:
        return files, data.image_files([opts.val])
    first = data.image_files(list(opts.images[:1]))
    _, val = data.split_holdout(first, opts.n_val, opts.seed)
    held = set(val)
    return [f for f in files if f not in held], val


def _setup(opts: TrainOptions) -> _Run:
    torch.set_num_threads(opts.threads)
    torch.manual_seed(opts.seed)
    config = load_row(opts.row)
    spec = row_spec(config)
    degrade = opts.degrade or ("blur" if spec.scale == 1 else "bicubic")
    device = pick_device(opts.device)
    model = family_of(config).build(row_params(config))
    if opts.warm_start:
        warm_start(config.arch, model)
    if opts.init is not None:
        missing = init_from(model, opts.init, config)
        log.info("init from %s: %d entries kept their initial values %s", opts.init, len(missing), missing[:6])
    model.to(device).train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=opts.lr)
    train_files, val_files = _val_files(opts)
    multiple = spec.scale * spec.size_multiple
    val_pairs = data.validation_pairs(val_files, spec.scale, degrade, opts.seed, multiple)
    sampler = data.PatchSampler(train_files, spec, opts.patch, degrade)
    log.info("%s: %d training images, %d validation images, degrade %s, device %s",
             config.name, len(sampler.hr), len(val_pairs), degrade, device)
    return _Run(opts, config, spec, device, model, optimizer, sampler, val_pairs,
                np.random.default_rng([opts.seed, 1]), val_names=[f"{p.parent.name}/{p.name}" for p in val_files])


def _resume(run: _Run, path: Path) -> None:
    state = load_state(path, run.config.name)
    run.model.load_state_dict(state["model"], strict=True)
    run.optimizer.load_state_dict(state["optimizer"])
    run.rng.bit_generator.state = state["numpy_rng"]
    torch.set_rng_state(state["torch_rng"])
    run.step, run.elapsed_s, run.history = state["step"], state["elapsed_s"], state["history"]
    log.info("resumed %s at step %d (%.1f min trained)", path, run.step, run.elapsed_s / 60)


def _train_step(run: _Run) -> float:
    lr_np, hr_np = run.sampler.batch(run.opts.batch, run.rng)
    x, y = torch.from_numpy(lr_np).to(run.device), torch.from_numpy(hr_np).to(run.device)
    loss = torch.nn.functional.l1_loss(run.model(x), y) / run.spec.value_range
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    run.step += 1
    return float(loss.detach())


def _set_lr(run: _Run, lr: float) -> None:
    for group in run.optimizer.param_groups:
        group["lr"] = lr


def _checkpoint(run: _Run, losses: list[float]) -> None:
    """Validate, log one history entry and save the run's files."""
    psnr = run.validate()
    entry = {"step": run.step, "minutes": round(run.elapsed_s / 60, 2),
             "loss": round(float(np.mean(losses)), 6) if losses else None,
             "val_psnr_y": round(psnr, 3) if psnr is not None else None,
             "lr": run.optimizer.param_groups[0]["lr"]}
    run.history.append(entry)
    log.info("step %d  %.1f min  loss %s  val PSNR-Y %s dB", run.step, run.elapsed_s / 60, entry["loss"],
             entry["val_psnr_y"])
    run.save(run.opts.out)


def train(opts: TrainOptions) -> TrainResult:
    """Train a row (see the module docstring); returns the checkpoint path and the history.

    Raises DatasetError (no usable images), WeightsError (unreadable ``init`` or state), UsageError.
    """
    run = _setup(opts)
    opts.out.mkdir(parents=True, exist_ok=True)
    if (opts.out / "state.pt").is_file():
        _resume(run, opts.out / "state.pt")
    bicubic = _val_bicubic(run)
    budget, started = opts.minutes * 60.0, time.monotonic()
    last_val, losses, decayed = started, [], False
    _set_lr(run, opts.lr)
    while time.monotonic() - started < budget and (opts.max_steps is None or run.step < opts.max_steps):
        if not decayed and time.monotonic() - started >= opts.decay_at * budget:
            _set_lr(run, opts.lr * opts.decay_factor)
            decayed = True
        t0 = time.monotonic()
        losses.append(_train_step(run))
        run.elapsed_s += time.monotonic() - t0
        if time.monotonic() - last_val >= opts.val_every_s:
            _checkpoint(run, losses)
            last_val, losses = time.monotonic(), []
    if not run.history or run.history[-1]["step"] != run.step:
        _checkpoint(run, losses)
    return TrainResult(opts.out / "checkpoint.pt", run.step, run.elapsed_s, run.history, bicubic)


def _val_bicubic(run: _Run) -> float | None:
    """Validation PSNR of MATLAB-bicubic upscaling (the baseline the model must beat)."""
    if not run.val_pairs:
        return None
    outs = [bicubic_upscale(lr, hr.shape[:2]) for lr, hr in run.val_pairs]
    psnr = mean_psnr(outs, [hr for _, hr in run.val_pairs], run.spec)
    log.info("validation baseline (bicubic / degraded input): PSNR-Y %.3f dB", psnr)
    return psnr
