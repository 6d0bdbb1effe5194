"""Writing house weights: a trained run's ``checkpoint.pt`` → ``vacc_deploy/house_weights/<row>.safetensors``
(fp16, official key layout) + ``<row>.provenance.json``.

The provenance records what made the weights (data, steps, minutes, validation PSNR, the exact
command, machine, torch version) and, once measured, the Set5 evaluation against MATLAB bicubic.
The row's YAML then names the file and its sha256 (``weights.house``); see docs/house_weights.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vacc_deploy import artifacts
from vacc_deploy.config import HOUSE_DIR, RowConfig
from vacc_deploy.errors import WeightsError
from vacc_deploy.models import create_model
from vacc_deploy.training.state import save_fp16_safetensors
from vacc_deploy.weights import sha256_file


def provenance_path(weights_file: Path) -> Path:
    """``<stem>.provenance.json`` beside a house weights file."""
    return weights_file.with_name(weights_file.name.removesuffix(".safetensors") + ".provenance.json")


def write_house(config: RowConfig, run_dir: Path, command: str, extra: dict[str, Any] | None = None,
                folder: Path = HOUSE_DIR) -> tuple[Path, str]:
    """Convert ``run_dir/checkpoint.pt`` to fp16 safetensors in ``folder`` and write its provenance.

    The checkpoint is first loaded strictly into the row's network (so a wrong layout fails here,
    not at use). Returns (weights file, sha256). Raises WeightsError for a missing/unloadable run.
    """
    ckpt, log_file = run_dir / "checkpoint.pt", run_dir / "train_log.json"
    if not ckpt.is_file() or not log_file.is_file():
        raise WeightsError(f"{run_dir}: no checkpoint.pt / train_log.json (run scripts/train.py first)")
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    create_model(config, state)  # strict load: the official key layout
    out = folder / f"{config.name}.safetensors"
    save_fp16_safetensors(out, state, metadata={"row": config.name, "format": "house-v1"})
    digest = sha256_file(out)
    log = artifacts.read_json(log_file)
    best = max((h["val_psnr_y"] for h in log["history"] if h.get("val_psnr_y") is not None), default=None)
    record = {"row": config.name, "file": out.name, "sha256": digest, "dtype": "float16",
              "train_command": command or log["options"].get("command", ""), "steps": log["step"], "train_minutes": round(log["elapsed_s"] / 60, 1),
              "options": log["options"], "train_images": log.get("train_images"),
              "validation": {"images": log.get("val_images"),"final_psnr_y": log["history"][-1].get("val_psnr_y"),
                                                        "best_psnr_y": best, "history": log["history"]},
              "device": log.get("device"), "torch": log.get("torch"), "machine": log.get("machine"),
              **(extra or {})}
    artifacts.atomic_write_json(provenance_path(out), record)
    return out, digest


def write_derived(config: RowConfig, source: RowConfig, folder: Path = HOUSE_DIR) -> tuple[Path, str]:
    """House weights for ``config`` (BasicSR EDSR) mapped from ``source``'s house weights
    (EDSR-PyTorch, same size): the same function, other key names (:mod:`.convert`).

    The provenance is the source's, with ``derived_from`` naming the source file and its sha256.
    Raises WeightsError when the families or sizes do not match.
    """
    from vacc_deploy.models import row_params
    from vacc_deploy.training.convert import edsr_to_basicsr
    from vacc_deploy.weights import house_path

    src_params, dst_params = row_params(source), row_params(config)
    same = (source.arch, config.arch) == ("edsr", "edsr_basicsr") and \
        (src_params.n_feats, src_params.n_resblocks, src_params.scale) == \
        (dst_params.num_feat, dst_params.num_block, dst_params.scale)
    if not same:
        raise WeightsError(f"cannot derive {config.name} from {source.name}: not the same EDSR size/scale")
    src_file = house_path(source)
    src_state = create_model(source, "house").state_dict()
    state = edsr_to_basicsr(src_state, src_params.n_resblocks, src_params.rgb_range)
    create_model(config, state)  # strict load
    out = folder / f"{config.name}.safetensors"
    save_fp16_safetensors(out, state, metadata={"row": config.name, "format": "house-v1"})
    digest = sha256_file(out)
    prov = artifacts.read_json(provenance_path(src_file))
    prov.pop("set5", None)
    prov.update({"row": config.name, "file": out.name, "sha256": digest,
                 "derived_from": {"row": source.name, "file": src_file.name, "sha256": sha256_file(src_file),
                                  "mapping": "vacc_deploy.training.convert.edsr_to_basicsr (same function)"}})
    artifacts.atomic_write_json(provenance_path(out), prov)
    return out, digest


def results_table(folder: Path = HOUSE_DIR) -> str:
    """A markdown table of every house weights file's Set5 result against its baseline (MATLAB bicubic;
    for the x1 deblurring row, Set5 blurred by ``scripts/blur_dataset.py`` against the blurred input),
    read from the provenance files. ``trained`` is the time spent in training steps."""
    lines = ["| row | trained | steps | Set5 PSNR-Y house | baseline | baseline PSNR-Y | gain | SSIM-Y house / baseline |",
             "|---|---|---:|---:|---|---:|---:|---|"]
    for prov_file in sorted(folder.glob("*.provenance.json")):
        p = artifacts.read_json(prov_file)
        s = p.get("set5")
        if not s:
            continue
        how = f"{p['train_minutes']} min" + (f", mapped from {p['derived_from']['row']}" if "derived_from" in p else "")
        base = s.get("baseline", "MATLAB bicubic")
        lines.append(f"| {p['row']} | {how} | {p['steps']} | {s['house_psnr_y']:.3f} | {base} | {s['bicubic_psnr_y']:.3f} | "
                     f"{s['gain_db']:+.3f} | {s['house_ssim_y']:.4f} / {s['bicubic_ssim_y']:.4f} |")
    return "\n".join(lines)
