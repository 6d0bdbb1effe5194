"""Offline sample data for the pipeline when the user gives none: real photographs that ship with
scikit-image (public domain / permissively licensed; see scikit-image's ``data`` module), written
once as PNGs into the work folder. Two disjoint sets: evaluation images (HR only; LR is made by
MATLAB-compatible bicubic downsampling) and calibration images, so calibration never sees the
evaluation set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vacc_deploy import artifacts

EVAL_IMAGES = ("astronaut", "coffee", "chelsea", "rocket")
CALIB_IMAGES = ("stereo_motorcycle", "camera", "brick", "grass", "gravel", "immunohistochemistry",
                "hubble_deep_field")


def _load(name: str) -> np.ndarray:
    """An skimage sample as uint8 RGB (grayscale replicated; stereo pairs: the left view)."""
    from skimage import data

    img = getattr(data, name)()
    if isinstance(img, tuple):
        img = img[0]
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3]).astype(np.uint8)


def _write_set(folder: Path, names: tuple[str, ...]) -> Path:
    if (folder / ".complete").is_file():
        return folder
    from vacc_deploy.imaging.io import write_image

    with artifacts.staged_dir(folder) as tmp:
        for name in names:
            write_image(tmp / f"{name}.png", _load(name))
        (tmp / ".complete").write_text("\n".join(names) + "\n")
    return folder


def sample_datasets(workdir: Path | None = None) -> tuple[Path, Path]:
    """(evaluation folder, calibration folder) of real photos from scikit-image, written under
    ``<workdir>/samples/`` on first use and reused afterwards."""
    root = Path(workdir or artifacts.DEFAULT_WORKDIR) / "samples"
    return _write_set(root / "eval", EVAL_IMAGES), _write_set(root / "calib", CALIB_IMAGES)
