"""Weight resolution (SPEC section 2), torch-free.

Order: an explicit path; a file of the configured name in ``$VACC_DEPLOY_WEIGHTS``; the user cache
(``$VACC_DEPLOY_CACHE`` or ``~/.cache/vacc_deploy``); a download from the official address, verified
by sha256 before it is moved into the cache. Nothing half-downloaded is ever left in the cache.

House weights (``vacc_deploy/house_weights/<file>`` in the repository, trained by this project; see
``docs/house_weights.md``) are chosen with ``"house"``, and by the *default* resolution (``None``)
when the official checkpoint cannot be found or downloaded — said loudly, since they are not the
official checkpoint. An explicit ``"official"`` never falls back, and a checksum mismatch is always
an error.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, NamedTuple

from vacc_deploy.artifacts import file_digest, sha256_file, umask_mode
from vacc_deploy.config import HOUSE_DIR, OfficialWeights, RowConfig
from vacc_deploy.errors import ChecksumError, WeightsError
from vacc_deploy.progress import progress_bar

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
SPECIAL_WEIGHTS = ("synthetic", "official", "house")


def cache_dir() -> Path:
    """The user weight cache: ``$VACC_DEPLOY_CACHE`` or ``~/.cache/vacc_deploy``."""
    env = os.environ.get("VACC_DEPLOY_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "vacc_deploy"


def verify(path: Path, expected: str | None) -> str:
    """Return the file's sha256; raise ChecksumError when it does not start with ``expected``."""
    digest = sha256_file(path)
    if expected is not None and not digest.startswith(expected):
        raise ChecksumError(
            f"{path}: sha256 {digest} does not match the pinned {expected} (corrupt or wrong file)"
        )
    return digest


def _search_dirs() -> list[Path]:
    dirs = []
    env = os.environ.get("VACC_DEPLOY_WEIGHTS")
    if env:
        dirs.append(Path(env))
    dirs.append(cache_dir())
    return dirs


def _where_to_put(official: OfficialWeights) -> str:
    env = os.environ.get("VACC_DEPLOY_WEIGHTS")
    target = f"$VACC_DEPLOY_WEIGHTS ({env})" if env else f"{cache_dir()} or a folder named by $VACC_DEPLOY_WEIGHTS"
    return f"put {official.file} in {target}, or give the checkpoint file's path as the weights"


HOUSE_LABEL = "house weights (not the official checkpoint)"


def house_path(config: RowConfig) -> Path:
    """The row's verified house weights file (``vacc_deploy/house_weights/<file>``).

    Raises WeightsError when the row has no house entry or the file is missing; ChecksumError when
    its sha256 differs from the pinned one.
    """
    house = config.weights.house
    if house is None:
        raise WeightsError(f"row '{config.name}' has no house weights; choose synthetic weights or a checkpoint file",
                           option="weights")
    path = HOUSE_DIR / house.file
    if not path.is_file():
        raise WeightsError(f"row '{config.name}': house weights {path} not found (incomplete checkout?)")
    verify(path, house.sha256)
    return path


def weights_kind(config: RowConfig, digest: str) -> str:
    """``official`` or ``house`` when a file's sha256 is the row's pinned one, else ``file``."""
    official, house = config.weights.official, config.weights.house
    if house is not None and digest == house.sha256:
        return "house"
    if official is not None and official.sha256 is not None and digest.startswith(official.sha256):
        return "official"
    return "file"


def resolve_with_kind(config: RowConfig, weights: str | Path | None = None, *, download: bool = True
                      ) -> tuple[Path, str]:
    """Like :func:`resolve_weights`, also saying how the file was chosen: ``official``, ``house``
    (asked for, or the default's fallback) or ``file`` (an explicit path)."""
    text = None if weights is None else str(weights)
    if text == "house":
        return house_path(config), "house"
    if text not in (None, "official"):
        path = Path(text).expanduser()
        if path.is_dir():
            raise WeightsError(f"{weights}: is a directory, not a checkpoint file", option="weights")
        if not path.is_file():
            raise WeightsError(f"{weights}: file not found", option="weights")
        return path, "file"
    try:
        return _official(config, download), "official"
    except ChecksumError:
        raise
    except WeightsError as exc:
        if text is not None or config.weights.house is None:
            raise
        path = house_path(config)
        log.warning("%s: official checkpoint not available (%s); using HOUSE WEIGHTS %s — %s, accuracy is "
                    "not the paper's", config.name, exc, path.name, HOUSE_LABEL)
        return path, "house"


def default_choice(config: RowConfig) -> str:
    """Which weights the default resolution (no ``--weights``) would use for ``config`` on this
    machine, without downloading or hashing anything: ``official`` (the checkpoint is in a local
    folder), ``official download, else house`` / ``... else synthetic`` (it would be downloaded; an
    offline machine falls back), ``house`` or ``synthetic``."""
    official, house = config.weights.official, config.weights.house
    fallback = "house" if house is not None and (HOUSE_DIR / house.file).is_file() else "synthetic"
    if official is None:
        return fallback
    if any((folder / official.file).is_file() for folder in _search_dirs()):
        return "official"
    if official.url is not None and official.sha256 is not None:
        return f"official download, else {fallback}"
    return fallback


def resolve_weights(config: RowConfig, weights: str | Path | None = None, *, download: bool = True) -> Path:
    """Find (or download) the checkpoint file for a row and return its verified path.

    Args:
        config: the row.
        weights: an explicit path; ``"official"`` for the row's official checkpoint only; ``"house"``
            for its house weights; None (default) for the official checkpoint, falling back to the
            house weights (with a warning) when the official one cannot be found or downloaded.
        download: allow downloading from the official address when no local file is found.

    Raises:
        WeightsError: no checkpoint is configured, the explicit file is missing, or the download
            failed (the message says where to put the file). ChecksumError: a hash mismatch.
    """
    return resolve_with_kind(config, weights, download=download)[0]


def _official(config: RowConfig, download: bool) -> Path:
    """The row's official checkpoint: local folders, then a verified download."""
    official = config.weights.official
    if official is None:
        raise WeightsError(
            f"row '{config.name}' has no official checkpoint; choose synthetic weights or a checkpoint file",
            option="weights")
    for folder in _search_dirs():
        candidate = folder / official.file
        if candidate.is_file():
            verify(candidate, official.sha256)
            return candidate
    if not download or official.url is None:
        raise WeightsError(f"row '{config.name}': checkpoint {official.file} not found; {_where_to_put(official)}")
    if official.sha256 is None:
        raise WeightsError(
            f"row '{config.name}': {official.file} has no pinned sha256, so it is not downloaded "
            f"unverified; download {official.url} yourself and {_where_to_put(official)}"
        )
    return download_file(official.url, cache_dir() / official.file, official.sha256, hint=_where_to_put(official))


def download_file(url: str, dest: Path, sha256: str, *, timeout: float = 60.0, hint: str = "") -> Path:
    """Download ``url`` to ``dest`` atomically, verifying its sha256 (or prefix) before the rename.

    The bytes go to a temporary file in ``dest``'s folder; on any failure it is removed, so ``dest``
    is either absent or complete and verified. Raises WeightsError / ChecksumError.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _fetch(url, out, timeout, dest.name)
        if not digest.startswith(sha256):
            raise ChecksumError(f"{url}: downloaded file has sha256 {digest}, expected {sha256}; not saved")
        os.chmod(tmp, umask_mode())  # mkstemp makes 0o600
        os.replace(tmp, dest)
        log.info("downloaded %s -> %s", url, dest)
        return dest
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise WeightsError(f"cannot download {url} ({reason}); {hint or 'check the network'}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def _fetch(url: str, out, timeout: float, label: str) -> str:
    h = hashlib.sha256()
    req = urllib.request.Request(url, headers={"User-Agent": "vacc-deploy"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        total = int(resp.headers.get("Content-Length") or 0) or None
        with progress_bar(total=total, unit="B", unit_scale=True, desc=f"download {label}", leave=False) as bar:
            for block in iter(lambda: resp.read(_CHUNK), b""):
                out.write(block)
                h.update(block)
                bar.update(len(block))
    return h.hexdigest()


class WeightsRef(NamedTuple):
    """A row's weights as every later stage sees them: ``label`` (``kind:file``, kind ``official``,
    ``house`` or ``file``; or the synthetic-v1 rule), the file's sha256 (None for synthetic) and
    ``arg``, what :func:`vacc_deploy.models.create_model` takes (a path, or ``"synthetic"``)."""

    label: str
    sha256: str | None
    arg: Any

    @property
    def kind(self) -> str:
        """``official``, ``house``, ``file`` or ``synthetic``."""
        return "synthetic" if self.sha256 is None else self.label.split(":")[0]


def weights_identity(config: RowConfig, weights: str | Path | None) -> WeightsRef:
    """The :class:`WeightsRef` of a weights choice (None/"official", "house", "synthetic" or a path).

    The sha256 of the file goes into every cache key, so house and official weights never share a
    cached export; a path to the house file (recognised by its hash) is labelled ``house``. Hashing is
    memoised per process (:func:`vacc_deploy.artifacts.file_digest`). Raises WeightsError.
    """
    if str(weights) == "synthetic":
        syn = config.weights.synthetic
        return WeightsRef(f"synthetic-v1 (seed_base {syn.seed_base}, std_factor {syn.std_factor})", None, "synthetic")
    path, kind = resolve_with_kind(config, weights)
    digest = file_digest(path)
    if kind == "file":
        kind = weights_kind(config, digest)
    if kind == "house" and weights is not None:
        log.warning("%s: HOUSE WEIGHTS %s — %s", config.name, path.name, HOUSE_LABEL)
    return WeightsRef(f"{kind}:{path.name}", digest, path)
