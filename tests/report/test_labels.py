"""Labels never contradict the weights in use: a row's description says what the row is (never
which weights), the report says which weights ran on a line of its own, ``models`` says which
weights this machine would use, and a build lists only the settings of its precision."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import row_variant
from tests.graphs import conv_relu_conv_add
from vacc_deploy.backends import BuildOptions
from vacc_deploy.backends.ort.build import build_onnxruntime
from vacc_deploy.config import available_rows, load_row
from vacc_deploy.report.model import ReportData
from vacc_deploy.report.sections import weights_sentence
from vacc_deploy.weights import default_choice


@pytest.mark.parametrize("row", available_rows())
def test_descriptions_say_what_the_row_is_not_which_weights(row: str) -> None:
    text = load_row(row).description.lower()
    assert not re.search(r"checkpoint|official|house|synthetic|weights|trained by", text), text


@pytest.mark.parametrize("provenance, weights, sha, words", [
    ("house", "house:lesrcnn_x2.safetensors", "ab" * 32, ["house weights lesrcnn_x2.safetensors", "trained by this project",
                                                         "not the official checkpoint", "sha256 " + "ab" * 32]),
    ("official", "official:lesrcnn_x2.pth", "cd" * 32, ["the official checkpoint lesrcnn_x2.pth"]),
    ("synthetic", "synthetic-v1 (seed_base 1000, std_factor 1.0)", None, ["synthetic weights", "meaningless"]),
    ("file", "file:mine.pth", "ef" * 32, ["a user checkpoint, mine.pth", "sha256"]),
])
def test_weights_sentence(provenance: str, weights: str, sha: str | None, words: list[str]) -> None:
    text = weights_sentence(ReportData(row="r", weights=weights, provenance=provenance, weights_sha256=sha))
    assert all(w in text for w in words), text
    if provenance != "official":
        assert "the official checkpoint " not in text


def test_default_choice_without_download_or_hashing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VACC_DEPLOY_WEIGHTS", raising=False)
    monkeypatch.setenv("VACC_DEPLOY_CACHE", str(tmp_path / "cache"))
    config = load_row("edsr_baseline_x2")
    assert default_choice(config) == "official download, else house"
    assert default_choice(load_row("edsr_x2")) == "official download, else synthetic"
    assert default_choice(load_row("bsrnet_x4")) == "synthetic"  # no sha256 pinned: never downloaded
    assert default_choice(load_row("edsr_x1_deblur")) == "house"  # no public checkpoint
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / config.weights.official.file).write_bytes(b"x")
    assert default_choice(config) == "official"
    no_house = load_row(row_variant(tmp_path, "edsr_x1_deblur", weights__house=None))
    assert default_choice(no_house) == "synthetic"


def test_fp16_build_lists_no_int8_settings(tmp_path: Path) -> None:
    built = build_onnxruntime(conv_relu_conv_add(tmp_path / "g.onnx"), BuildOptions(precision="fp16"),
                              row="g", workdir=tmp_path / "w")
    assert built.manifest["settings"] == {"keep_io_types": True}
