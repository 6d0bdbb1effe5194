"""Real checkpoints load strictly; corrupt files, mismatched state dicts and bad params fail cleanly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml

from vacc_deploy.config import CONFIG_DIR, load_row
from vacc_deploy.errors import ConfigError, WeightsError
from vacc_deploy.models import create_model, family_of, load_checkpoint, row_params
from vacc_deploy.models.common import convert_checkpoint

REAL = ["lesrcnn_x2", "lesrcnn_x3", "lesrcnn_x4", "bicubic_pp_x3"]


@pytest.mark.parametrize("row", REAL)
def test_real_checkpoint_loads_strictly(row: str, weights_dir: Path) -> None:
    config = load_row(row)
    state = load_checkpoint(weights_dir / config.weights.official.file, config)
    model = create_model(row, state)
    assert not model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key].float()), key


def test_random_bytes_file_raises(tmp_path: Path) -> None:
    bad = tmp_path / "random.pth"
    bad.write_bytes(os.urandom(4096))
    with pytest.raises(WeightsError, match="random.pth"):
        load_checkpoint(bad, load_row("lesrcnn_x2"))


def test_truncated_file_raises(tmp_path: Path, weights_dir: Path) -> None:
    data = (weights_dir / "bicubic_pp_x3.pth").read_bytes()
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="truncated.pth") as err:
        load_checkpoint(bad, load_row("bicubic_pp_x3"))
    assert "\n" not in str(err.value)


def test_non_tensor_checkpoint_raises(tmp_path: Path) -> None:
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(WeightsError):
        load_checkpoint(path, load_row("lesrcnn_x2"))
    with pytest.raises(WeightsError):
        convert_checkpoint({"conv0.weight": 1.0}, "state_dict")
    with pytest.raises(WeightsError):
        convert_checkpoint({"state_dict": {"a": torch.zeros(1)}}, "basicsr")


def test_unwrap_rules() -> None:
    sd = {"a.weight": torch.zeros(2), "b.bias": torch.ones(1)}
    assert convert_checkpoint(sd, "state_dict").keys() == sd.keys()
    assert convert_checkpoint({"state_dict": sd, "epoch": 3}, "state_dict").keys() == sd.keys()
    assert convert_checkpoint({"params": sd}, "basicsr").keys() == sd.keys()
    assert convert_checkpoint({"params_ema": sd}, "basicsr").keys() == sd.keys()
    prefixed = {f"module.{k}": v for k, v in sd.items()}
    assert convert_checkpoint(prefixed, "state_dict").keys() == sd.keys()


def _small_state(row: str) -> dict[str, torch.Tensor]:
    config = load_row(row)
    return dict(family_of(config).build(row_params(config)).state_dict())


def test_missing_key_raises() -> None:
    state = _small_state("bicubic_pp_x2")
    del state["conv1.weight"]
    with pytest.raises(WeightsError, match="conv1.weight"):
        create_model("bicubic_pp_x2", state)


def test_extra_key_raises() -> None:
    state = _small_state("bicubic_pp_x2")
    state["conv9.weight"] = torch.zeros(1)
    with pytest.raises(WeightsError, match="conv9.weight"):
        create_model("bicubic_pp_x2", state)


def test_wrong_shape_raises() -> None:
    state = _small_state("bicubic_pp_x2")
    state["conv_out.weight"] = torch.zeros(108, 32, 3, 3)  # the x3 layout
    with pytest.raises(WeightsError, match="conv_out.weight"):
        create_model("bicubic_pp_x2", state)


def _yaml_with_params(tmp_path: Path, row: str, **extra: object) -> Path:
    data = yaml.safe_load((CONFIG_DIR / f"{row}.yaml").read_text(encoding="utf-8"))
    data["params"] = {**data["params"], **extra}
    path = tmp_path / f"{row}_custom.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_unknown_param_key_raises(tmp_path: Path) -> None:
    path = _yaml_with_params(tmp_path, "lesrcnn_x2", foo=1)
    with pytest.raises(ConfigError, match="params.foo"):
        create_model(path, "synthetic")


@pytest.mark.parametrize(
    ("row", "bad"),
    [("lesrcnn_x2", {"scale": 5}), ("bsrgan_x2", {"scale": 3}), ("edsr_x2", {"scale": 1}),
     ("bicubic_pp_x2", {"scale": 0}), ("edsr_mx2", {"num_feat": 0})],
)
def test_invalid_param_value_raises(tmp_path: Path, row: str, bad: dict) -> None:
    path = _yaml_with_params(tmp_path, row, **bad)
    with pytest.raises(ConfigError, match=f"params.{next(iter(bad))}"):
        create_model(path, "synthetic")


def test_model_level_param_error_names_params(tmp_path: Path) -> None:
    path = _yaml_with_params(tmp_path, "edsr_mx2", num_in_ch=1)
    with pytest.raises(ConfigError, match="key 'params'"):
        create_model(path, "synthetic")
