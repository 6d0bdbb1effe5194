"""Row configs: every shipped row validates; unknown keys, wrong types, unknown rows are errors."""

from __future__ import annotations

import pytest

from tests.helpers import row_variant
from vacc_deploy.config import available_rows, load_row, parse_shape
from vacc_deploy.errors import ConfigError, UsageError

EXPECTED_ROWS = {
    "bsrnet_x4", "bsrgan_x4", "bsrgan_x2", "bicubic_pp_x2", "bicubic_pp_x3",
    "edsr_baseline_x2", "edsr_baseline_x3", "edsr_baseline_x4", "edsr_x2", "edsr_x3", "edsr_x4",
    "edsr_mx2", "edsr_x1_deblur", "lesrcnn_x2", "lesrcnn_x3", "lesrcnn_x4",
    "realesrgan_x4plus", "realesrgan_x4plus_anime_6b", "realesr_animevideov3_x4",
}


def test_all_rows_ship() -> None:
    assert set(available_rows()) == EXPECTED_ROWS


@pytest.mark.parametrize("row", sorted(EXPECTED_ROWS))
def test_row_loads(row: str) -> None:
    config = load_row(row)
    assert config.name == row
    assert config.input_shape[:2] == (1, 3)
    assert config.weights.synthetic.seed_base == 1000


def test_row_by_path(tmp_path) -> None:
    path = row_variant(tmp_path, "lesrcnn_x2", description="copy")
    assert load_row(path).description == "copy"
    assert load_row(str(path)).name == "lesrcnn_x2"


def test_unknown_row() -> None:
    with pytest.raises(UsageError, match="unknown row 'nope'"):
        load_row("nope")


def test_unknown_top_level_key(tmp_path) -> None:
    path = row_variant(tmp_path, "lesrcnn_x2", colour="blue")
    with pytest.raises(ConfigError, match=r"key 'colour': unknown key") as info:
        load_row(path)
    assert str(path) in str(info.value)


def test_unknown_nested_key(tmp_path) -> None:
    path = row_variant(tmp_path, "lesrcnn_x2", weights__official__mirror="x")
    with pytest.raises(ConfigError, match=r"key 'weights.official.mirror': unknown key"):
        load_row(path)


def test_wrong_type(tmp_path) -> None:
    path = row_variant(tmp_path, "lesrcnn_x2", input_shape="big")
    with pytest.raises(ConfigError, match="key 'input_shape'"):
        load_row(path)


def test_bad_sha(tmp_path) -> None:
    path = row_variant(tmp_path, "lesrcnn_x2", weights__official__sha256="XYZ")
    with pytest.raises(ConfigError, match="sha256"):
        load_row(path)


def test_not_yaml(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_row(path)


@pytest.mark.parametrize("text", ["1x3x128", "2x3x8x8", "1x1x8x8", "1x3x0x8", "abc"])
def test_parse_shape_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_shape(text)


def test_parse_shape() -> None:
    assert parse_shape("1x3x1080x1920") == (1, 3, 1080, 1920)
