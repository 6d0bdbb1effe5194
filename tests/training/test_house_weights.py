"""House weights: the fp16 safetensors round trip, the ``weights.house`` schema, resolution
(``--weights house``; default order official → house → synthetic), labels and cache identity, and the
house weights shipped in the repository (file, sha256, strict load, provenance)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from tests.helpers import closed_port_url, row_variant
from vacc_deploy import weights as weights_mod
from vacc_deploy.config import HOUSE_DIR, available_rows, load_row
from vacc_deploy.errors import ChecksumError, ConfigError, WeightsError
from vacc_deploy.weights import weights_identity
from vacc_deploy.models import create_model, load_checkpoint
from vacc_deploy.pipeline.run import _provenance
from vacc_deploy.training.house import provenance_path
from vacc_deploy.training.state import save_fp16_safetensors
from vacc_deploy.weights import resolve_with_kind, sha256_file

GOOD_SHA = "0" * 64


def test_fp16_safetensors_round_trip(tmp_path: Path) -> None:
    model = create_model("bicubic_pp_x2", "synthetic")
    path = tmp_path / "w.safetensors"
    save_fp16_safetensors(path, model.state_dict())
    with safe_open(str(path), framework="pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    loaded = load_checkpoint(path, load_row("bicubic_pp_x2"))
    for key, ref in model.state_dict().items():
        assert loaded[key].dtype == torch.float32
        torch.testing.assert_close(loaded[key], ref, rtol=1e-3, atol=1e-4)
    create_model("bicubic_pp_x2", path)  # strict load


def test_corrupt_safetensors_is_a_weights_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00not a header")
    with pytest.raises(WeightsError, match="bad.safetensors"):
        create_model("bicubic_pp_x2", bad)


@pytest.mark.parametrize("entry, key", [
    ({"file": "x.safetensors", "sha256": "abc"}, "sha256"),
    ({"file": "x.safetensors", "sha256": "A" * 64}, "sha256"),
    ({"file": "../x.safetensors", "sha256": GOOD_SHA}, "file"),
    ({"file": "x.pth", "sha256": GOOD_SHA}, "file"),
    ({"file": "x.safetensors", "sha256": GOOD_SHA, "url": "http://x"}, "url"),
    ({"sha256": GOOD_SHA}, "file"),
])
def test_schema_rejects_bad_house_entries(tmp_path: Path, entry: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=f"weights.house.{key}"):
        load_row(row_variant(tmp_path, "bicubic_pp_x2", weights__house=entry))


@pytest.fixture()
def house_row(tmp_path: Path, monkeypatch):
    """A LESRCNN x2 variant whose official checkpoint cannot be found (no network) and whose house
    weights are a tmp file; the house folder is redirected to tmp."""
    monkeypatch.setenv("VACC_DEPLOY_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("VACC_DEPLOY_WEIGHTS", raising=False)
    folder = tmp_path / "house"
    monkeypatch.setattr(weights_mod, "HOUSE_DIR", folder)
    path = folder / "lesrcnn_x2.safetensors"
    save_fp16_safetensors(path, create_model("lesrcnn_x2", "synthetic").state_dict())
    def make(**changes):  # no house entry unless one is given (the shipped lesrcnn_x2 has one)
        changes.setdefault("weights__house", None)
        return load_row(row_variant(tmp_path, "lesrcnn_x2", weights__official__url=closed_port_url("w.pth"),
                                    weights__official__file="absent.pth", **changes))
    return make, path


def test_default_falls_back_to_house_then_explicit_choices(house_row, caplog) -> None:
    make, path = house_row
    config = make(weights__house={"file": path.name, "sha256": sha256_file(path)})
    assert resolve_with_kind(config, None) == (path, "house")
    assert "HOUSE WEIGHTS" in caplog.text and "not the official checkpoint" in caplog.text
    assert resolve_with_kind(config, "house") == (path, "house")
    with pytest.raises(WeightsError, match="cannot download"):
        resolve_with_kind(config, "official")  # an explicit official never falls back
    label, digest, arg = weights_identity(config, "house")
    assert label == f"house:{path.name}" and digest == sha256_file(path) and arg == path
    assert weights_identity(config, str(path))[0] == f"house:{path.name}"  # recognised by its hash
    assert weights_identity(config, None)[0] == f"house:{path.name}"


def test_pipeline_provenance_order(house_row) -> None:
    make, path = house_row
    with_house = make(weights__house={"file": path.name, "sha256": sha256_file(path)})
    weights, provenance, notes = _provenance(with_house, None)
    assert (weights, provenance) == ("house", "house") and "not the official checkpoint" in notes[0]
    assert _provenance(with_house, "house")[1] == "house"
    assert _provenance(make(), None)[:2] == ("synthetic", "synthetic")  # no house entry: synthetic


def test_house_checksum_mismatch_and_missing(house_row) -> None:
    make, path = house_row
    with pytest.raises(ChecksumError):
        resolve_with_kind(make(weights__house={"file": path.name, "sha256": GOOD_SHA}), "house")
    with pytest.raises(WeightsError, match="not found"):
        resolve_with_kind(make(weights__house={"file": "gone.safetensors", "sha256": GOOD_SHA}), None)
    with pytest.raises(WeightsError, match="no house weights"):
        resolve_with_kind(make(), "house")


SHIPPED = [r for r in available_rows() if load_row(r).weights.house is not None]


@pytest.mark.parametrize("row", SHIPPED)
def test_shipped_house_weights(row: str) -> None:
    config = load_row(row)
    path = HOUSE_DIR / config.weights.house.file
    assert sha256_file(path) == config.weights.house.sha256
    create_model(row, "house")  # strict load of the official key layout
    from vacc_deploy import artifacts

    prov = artifacts.read_json(provenance_path(path))
    assert prov["sha256"] == config.weights.house.sha256 and prov["steps"] > 0
    assert prov["set5"]["gain_db"] >= 0.5  # acceptance: beats MATLAB bicubic on Set5 by >= 0.5 dB
    assert "Set5" not in " ".join(map(str, prov["options"]["images"]))  # never trained on Set5/Set14
    assert "Set14" not in " ".join(map(str, prov["options"]["images"]))


def test_some_house_weights_ship() -> None:
    assert "bicubic_pp_x2" in SHIPPED


def test_eval_and_pipeline_say_house(tmp_path: Path, caplog) -> None:
    import cv2
    import numpy as np

    from vacc_deploy import artifacts
    from vacc_deploy.cli import main

    ev = tmp_path / "ev"
    ev.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(ev / f"hr{i}.png"), cv2.GaussianBlur(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8), (5, 5), 2))
    work, out = tmp_path / "w", tmp_path / "eval.json"
    assert main(["eval", "bicubic_pp_x2", "--weights", "house", "--shape", "1x3x32x32", "--dataset", str(ev),
                 "--workdir", str(work), "--json", str(out)]) == 0
    assert artifacts.read_json(out)["weights"] == "house:bicubic_pp_x2.safetensors"
    assert "not the official checkpoint" in caplog.text
    assert main(["pipeline", "bicubic_pp_x2", "--shape", "1x3x32x32", "--dataset", str(ev), "--calib-images",
                 str(ev), "--num", "2", "--precisions", "fp32", "--iters", "2", "--warmup", "1",
                 "--workdir", str(work)]) == 0  # default weights: no official checkpoint -> house
    page = (work / "bicubic_pp_x2" / "report" / "report.html").read_text()
    assert "HOUSE WEIGHTS (not the official checkpoint)" in page and "SYNTHETIC WEIGHTS" not in page.upper()
