"""CLI contract for bad input: one clear line naming the file/key, exit code 2 (usage/config) or 1
(failure), no traceback without --debug, and nothing half-written in the work folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from tests.helpers import closed_port_url, row_variant
from vacc_deploy.cli import main
from vacc_deploy.config import available_rows


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(err: str, *needles: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("vacc-deploy: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture()
def no_weights(tmp_path, monkeypatch) -> Path:
    """An empty weight cache and no $VACC_DEPLOY_WEIGHTS."""
    monkeypatch.setenv("VACC_DEPLOY_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("VACC_DEPLOY_WEIGHTS", raising=False)
    return tmp_path / "cache"


def test_models_table_and_json(capsys) -> None:
    code, out, _ = _run(capsys, ["models"])
    assert code == 0 and "lesrcnn_x2" in out and "bicubic_pp_x3" in out
    code, out, _ = _run(capsys, ["models", "--json"])
    rows = {r["row"]: r for r in json.loads(out)}
    assert code == 0 and list(rows) == available_rows()
    assert rows["realesr_animevideov3_x4"]["input_shape"] == [1, 3, 270, 480]
    assert rows["bicubic_pp_x3"]["channel_order"] == "BGR" and rows["edsr_x2"]["value_range"] == 255


def test_unknown_row(capsys, tmp_path) -> None:
    code, _, err = _run(capsys, ["export", "nope", "--workdir", str(tmp_path)])
    assert code == 2
    _assert_one_line_error(err, "unknown row 'nope'")


def test_unknown_yaml_key(capsys, tmp_path) -> None:
    path = row_variant(tmp_path, "lesrcnn_x2", quant__mode="x")
    code, _, err = _run(capsys, ["export", str(path), "--weights", "synthetic", "--workdir", str(tmp_path / "w")])
    assert code == 2
    _assert_one_line_error(err, str(path), "quant.mode", "unknown key")
    assert _files(tmp_path / "w") == []


def test_unknown_params_key(capsys, tmp_path) -> None:
    path = row_variant(tmp_path, "lesrcnn_x2", params={"scale": 2, "groups": 4})
    code, _, err = _run(capsys, ["export", str(path), "--weights", "synthetic", "--workdir", str(tmp_path / "w")])
    assert code == 2
    _assert_one_line_error(err, "params.groups", "unknown key")


def test_wrong_type(capsys, tmp_path) -> None:
    path = row_variant(tmp_path, "lesrcnn_x2", input_shape=[1, 3, "tall", 8])
    code, _, err = _run(capsys, ["export", str(path), "--weights", "synthetic", "--workdir", str(tmp_path / "w")])
    assert code == 2
    _assert_one_line_error(err, "input_shape")


@pytest.mark.parametrize("shape", ["1x3x33x32", "1x3x32x31"])
def test_odd_shape_for_bicubic_pp(capsys, tmp_path, shape) -> None:
    code, _, err = _run(capsys, ["export", "bicubic_pp_x3", "--weights", "synthetic", "--shape", shape,
                                 "--workdir", str(tmp_path)])
    assert code == 2
    _assert_one_line_error(err, shape, "multiples of 2")
    assert _files(tmp_path) == []


def test_bad_shape_string(capsys, tmp_path) -> None:
    code, _, err = _run(capsys, ["export", "lesrcnn_x2", "--shape", "128x128", "--workdir", str(tmp_path)])
    assert code == 2
    _assert_one_line_error(err, "NxCxHxW")


def test_missing_weights_without_network(capsys, tmp_path, no_weights) -> None:
    path = row_variant(tmp_path, "lesrcnn_x2", weights__official__url=closed_port_url("lesrcnn_x2.pth"),
                       weights__house=None)  # no house fallback: the official checkpoint or an error
    code, _, err = _run(capsys, ["export", str(path), "--workdir", str(tmp_path / "w")])
    assert code == 1
    _assert_one_line_error(err, "cannot download", "put lesrcnn_x2.pth in")
    assert _files(tmp_path / "w") == [] and _files(no_weights) == []


def test_checksum_mismatch(capsys, tmp_path, no_weights) -> None:
    no_weights.mkdir(parents=True)
    (no_weights / "lesrcnn_x2.pth").write_bytes(b"definitely not the official file")
    code, _, err = _run(capsys, ["export", "lesrcnn_x2", "--workdir", str(tmp_path / "w")])
    assert code == 1
    _assert_one_line_error(err, "lesrcnn_x2.pth", "sha256", "does not match")
    assert _files(tmp_path / "w") == []


@pytest.mark.parametrize("content", [b"\x00garbage" * 100, b""])
def test_corrupt_checkpoint(capsys, tmp_path, content) -> None:
    bad = tmp_path / "bad.pth"
    bad.write_bytes(content)
    code, _, err = _run(capsys, ["export", "lesrcnn_x2", "--weights", str(bad), "--workdir", str(tmp_path / "w")])
    assert code == 1
    _assert_one_line_error(err, str(bad), "cannot load checkpoint")
    assert _files(tmp_path / "w") == []


def test_checkpoint_of_another_row(capsys, tmp_path, weights_dir) -> None:
    code, _, err = _run(capsys, ["export", "lesrcnn_x2", "--weights", str(weights_dir / "lesrcnn_x3.pth"),
                                 "--workdir", str(tmp_path / "w")])
    assert code == 1
    _assert_one_line_error(err, "lesrcnn_x3.pth", "does not match the architecture")


def test_debug_shows_traceback(capsys, tmp_path) -> None:
    code, _, err = _run(capsys, ["--debug", "export", "nope", "--workdir", str(tmp_path)])
    assert code == 2 and "Traceback" in err


def test_a_repeated_warning_is_shown_once_per_command(capsys) -> None:
    """The CLI's stderr handler shows each distinct warning once per command (the pipeline's stages
    would otherwise repeat the house-weights warning once each); a new command shows it again."""
    import logging

    from vacc_deploy.cli import _configure_logging

    args = argparse.Namespace(debug=False, quiet=False, verbose=False)
    log = logging.getLogger("vacc_deploy.test_once")
    for _ in range(2):
        _configure_logging(args)
        for _ in range(3):
            log.warning("same warning")
        log.warning("another warning")
    err = capsys.readouterr().err
    assert err.count("WARNING: same warning") == 2 and err.count("WARNING: another warning") == 2
