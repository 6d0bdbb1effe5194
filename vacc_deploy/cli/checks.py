"""Up-front checks of a command's options, run before its first stage: a bad value costs no work
and is reported once, in one line naming the option and the path or value (SPEC section 7).

Checks only what can be known without building anything: where outputs go (a folder that is a
file, a read-only or unwritable place), input paths that do not exist, numbers out of range,
precision and method names, and whether a ``--shape`` can fit in this machine's memory at all.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from vacc_deploy.errors import OutputError, PathKindError, UsageError

WEIGHT_KEYWORDS = ("official", "house", "synthetic")


def _nearest_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _probe_write(flag: str, path: Path, folder: Path) -> None:
    """Create and delete a temporary file in ``folder``; OutputError naming ``path`` when that fails."""
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".vacc-deploy-probe-"):
            pass
    except OSError as exc:
        raise OutputError(f"{flag} {path}: cannot write there ({exc.strerror or exc})") from exc


def check_folder(flag: str, path: Path, shown: Path | None = None) -> None:
    """``path`` (an output folder, created later if missing) is or can become a writable folder.
    Errors name ``shown`` (default ``path``)."""
    shown = path if shown is None else shown
    base = _nearest_existing(path)
    if not base.is_dir():
        what = "is a file" if base == Path(os.path.abspath(shown)) else f"{base} is a file"
        raise PathKindError(f"{flag} {shown}: {what}, not a folder")
    _probe_write(flag, shown, base)


def check_file_target(flag: str, path: Path) -> None:
    """``path`` (an output file, written at the end) is not a folder and its folder is writable."""
    if path.is_dir():
        raise PathKindError(f"{flag} {path}: is a folder, expected a file name")
    check_folder(flag, path.parent, shown=path)


def check_exists(flag: str, path: Path | None) -> None:
    if path is not None and not Path(path).exists():
        raise UsageError(f"{flag} {path}: no such file or folder")


def check_shape_memory(args: argparse.Namespace) -> None:
    """Refuse a ``--shape`` whose input and output tensors alone (float32) exceed this machine's
    memory; a lower bound of what the model needs, so nothing that might fit is refused."""
    from vacc_deploy.config import load_row, parse_shape

    shape = parse_shape(args.shape)
    scale = int(load_row(args.row).params.get("scale", 1))
    need = 4 * 3 * shape[2] * shape[3] * (1 + scale * scale)
    try:
        have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return
    if need > have:
        raise UsageError(f"--shape {args.shape}: needs at least {need / 2**30:.1f} GiB (float32 input and x{scale} "
                         f"output tensors alone); this machine has {have / 2**30:.1f} GiB")


def check_numbers(args: argparse.Namespace) -> None:
    """Counts and sizes within their ranges."""
    minimum = {"overlap": 0, "num": 1, "threads": 1, "iters": 1, "warmup": 0, "images": 1,
               "max_float_layers": 0, "opset": 7}
    for name, low in minimum.items():
        value = getattr(args, name, None)
        if isinstance(value, int) and value < low:
            raise UsageError(f"--{name.replace('_', '-')} {value}: must be >= {low}")
    pct = getattr(args, "percentile", None)
    if pct is not None and not 0 < pct <= 100:
        raise UsageError(f"--percentile {pct}: must be in (0, 100]")


def check_names(args: argparse.Namespace) -> None:
    """Precision, int8 method and numerics names (--precisions, --quant, --numerics)."""
    from vacc_deploy.backends.ort import NUMERICS
    from vacc_deploy.cli.common import split_list
    from vacc_deploy.types import CALIB_METHODS, PRECISIONS

    for p in split_list(getattr(args, "precisions", None)):
        if p not in PRECISIONS:
            raise UsageError(f"--precisions: unknown precision '{p}' (expected {', '.join(PRECISIONS)})")
    for m in split_list(getattr(args, "quant", None)):
        if m not in CALIB_METHODS:
            raise UsageError(f"--quant: unknown int8 calibration method '{m}' (expected {', '.join(CALIB_METHODS)})")
    for n in split_list(getattr(args, "numerics", None)):
        if n not in NUMERICS:
            raise UsageError(f"--numerics {n}: unknown int8 numerics (expected {', '.join(NUMERICS)})")


def check_paths(args: argparse.Namespace) -> None:
    """Inputs exist; outputs can be written; --weights is not a folder."""
    from vacc_deploy.artifacts import DEFAULT_WORKDIR

    if hasattr(args, "workdir"):
        check_folder("--workdir", args.workdir or DEFAULT_WORKDIR)
    if args.command == "run":
        check_exists("--input", args.input)
        check_folder("--output", args.output)
    for flag in ("json", "plot"):
        if isinstance(getattr(args, flag, None), Path):
            check_file_target(f"--{flag}", getattr(args, flag))
    check_exists("--images" if args.command == "calib" else "--calib-images", getattr(args, "calib_images", None))
    check_exists("--dataset", getattr(args, "dataset", None))
    weights = getattr(args, "weights", None)
    if weights and weights not in WEIGHT_KEYWORDS and Path(weights).expanduser().is_dir():
        raise PathKindError(f"--weights {weights}: is a directory, not a checkpoint file")


def check_args(args: argparse.Namespace) -> None:
    """Every up-front check that applies to the command's options (see the module docstring)."""
    check_numbers(args)
    check_names(args)
    if getattr(args, "shape", None) and getattr(args, "row", None):
        check_shape_memory(args)
    check_paths(args)
