"""Weight resolution: explicit path, $VACC_DEPLOY_WEIGHTS, cache, and a real download from a local
HTTP server on 127.0.0.1 with sha256 verification (never the internet)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.helpers import closed_port_url, row_variant, serve_folder
from vacc_deploy.config import load_row
from vacc_deploy.errors import ChecksumError, WeightsError
from vacc_deploy.weights import download_file, resolve_weights

PAYLOAD = b"not really a checkpoint, but bytes with a known hash" * 1000
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture()
def env(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("VACC_DEPLOY_CACHE", str(cache))
    monkeypatch.delenv("VACC_DEPLOY_WEIGHTS", raising=False)
    return cache


@pytest.fixture()
def served(tmp_path) -> str:
    folder = tmp_path / "srv"
    folder.mkdir()
    (folder / "ckpt.pth").write_bytes(PAYLOAD)
    with serve_folder(folder) as base:
        yield base


def _row(tmp_path: Path, url: str, sha: str | None = SHA):
    """lesrcnn_x2 with a test checkpoint address and no house weights (no fallback: official only)."""
    return load_row(row_variant(tmp_path, "lesrcnn_x2", weights__official__url=url, weights__house=None,
                                weights__official__sha256=sha, weights__official__file="ckpt.pth"))


def test_download_verifies_and_caches(tmp_path, env, served) -> None:
    config = _row(tmp_path, f"{served}/ckpt.pth")
    path = resolve_weights(config)
    assert path == env / "ckpt.pth"
    assert path.read_bytes() == PAYLOAD
    assert list(env.iterdir()) == [path]  # no temporary file left
    assert resolve_weights(config, download=False) == path  # now found in the cache


def test_download_checksum_mismatch_leaves_nothing(tmp_path, env, served) -> None:
    config = _row(tmp_path, f"{served}/ckpt.pth", sha="0" * 64)
    with pytest.raises(ChecksumError, match="expected 0000"):
        resolve_weights(config)
    assert not env.exists() or list(env.iterdir()) == []


def test_download_404(tmp_path, env, served) -> None:
    config = _row(tmp_path, f"{served}/missing.pth")
    with pytest.raises(WeightsError, match="cannot download"):
        resolve_weights(config)


def test_no_network_says_where_to_put_the_file(tmp_path, env) -> None:
    config = _row(tmp_path, closed_port_url("ckpt.pth"))
    with pytest.raises(WeightsError, match=r"put ckpt.pth in"):
        resolve_weights(config)


def test_env_folder_wins_over_cache(tmp_path, env, monkeypatch) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "ckpt.pth").write_bytes(PAYLOAD)
    env.mkdir(parents=True)
    (env / "ckpt.pth").write_bytes(b"stale")
    monkeypatch.setenv("VACC_DEPLOY_WEIGHTS", str(folder))
    assert resolve_weights(_row(tmp_path, closed_port_url("x"))) == folder / "ckpt.pth"


def test_local_file_checksum_mismatch(tmp_path, env) -> None:
    env.mkdir(parents=True)
    (env / "ckpt.pth").write_bytes(b"corrupted")
    with pytest.raises(ChecksumError, match="does not match the pinned"):
        resolve_weights(_row(tmp_path, closed_port_url("x")))


def test_sha_prefix_is_accepted(tmp_path, env, served) -> None:
    assert resolve_weights(_row(tmp_path, f"{served}/ckpt.pth", sha=SHA[:8])).is_file()


def test_unpinned_checkpoint_is_not_downloaded(tmp_path, env, served) -> None:
    config = _row(tmp_path, f"{served}/ckpt.pth", sha=None)
    with pytest.raises(WeightsError, match="no pinned sha256"):
        resolve_weights(config)


def test_explicit_path(tmp_path, env) -> None:
    f = tmp_path / "x.pth"
    f.write_bytes(b"1")
    config = load_row("lesrcnn_x2")
    assert resolve_weights(config, f) == f
    with pytest.raises(WeightsError, match="file not found"):
        resolve_weights(config, tmp_path / "nope.pth")


def test_row_without_official_checkpoint(env) -> None:
    # explicitly "official": the default would fall back to the row's house weights (test_house_weights)
    with pytest.raises(WeightsError, match="no official checkpoint"):
        resolve_weights(load_row("edsr_x1_deblur"), "official")


def test_download_file_direct(tmp_path, served) -> None:
    dest = tmp_path / "d" / "out.pth"
    assert download_file(f"{served}/ckpt.pth", dest, SHA) == dest
    assert dest.read_bytes() == PAYLOAD
