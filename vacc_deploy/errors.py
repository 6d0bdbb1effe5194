"""Typed errors raised by library code. Only the CLI prints them and chooses exit codes.

Every error carries a one-line, user-facing message that names the file or key at fault and what
was expected. ``exit_code`` is 2 for usage and configuration errors, 1 for failures.

Library messages never name command-line flags: an error about one option's value carries the
option's name as the library knows it (``option``: a request or build-option field such as
``"precision"``, ``"calib_images"``), and the CLI puts its own flag for it in front of the message.
"""

from __future__ import annotations


class VaccError(Exception):
    """Base class of every error this package raises on purpose.

    ``option``: the name of the option whose value is at fault (the field name of the request that
    carried it), or None.
    """

    exit_code: int = 1

    def __init__(self, message: str, *, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


class UsageError(VaccError):
    """Bad command-line arguments or values (unknown row, bad shape string, ...)."""

    exit_code = 2


class ConfigError(UsageError):
    """A model config (YAML) is invalid: unknown key, wrong type, missing field."""


class ShapeError(UsageError):
    """A shape the model cannot take (e.g. not a multiple of the model's size multiple)."""


class WeightsError(VaccError):
    """Weights cannot be found, downloaded, verified or loaded."""


class ChecksumError(WeightsError):
    """A weight file's sha256 does not match the pinned value."""


class ExportError(VaccError):
    """Exporting to ONNX failed or the exported model does not match PyTorch."""


class ImageError(VaccError):
    """An image cannot be read or decoded."""


class DatasetError(UsageError):
    """A dataset or image folder is empty or not in a known layout."""


class BuildError(VaccError):
    """Building (quantizing, converting, compiling) a model failed."""


class BackendUnavailable(VaccError):
    """A requested backend is not installed on this machine."""


class OutputError(VaccError):
    """A file or folder cannot be written (read-only file system, no permission, no space)."""


class PathKindError(UsageError):
    """A path given as a folder is a file, or one given as a file is a folder."""
