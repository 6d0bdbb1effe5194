"""Packaging: the wheel carries the rows and the house weights, works installed (non-editable) from
any folder, and every third-party import of the package is a declared dependency.

The install test builds a wheel from a copy of the package (no build isolation, so nothing is
downloaded), installs it with ``--no-deps --no-index`` into a fresh venv whose dependencies come from
the running interpreter's site-packages (a ``.pth`` line: torch is not downloaded again), and runs
``vacc-deploy models`` and an export from an empty folder.
"""

from __future__ import annotations

import ast
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tomllib
import venv
from importlib import metadata
from pathlib import Path

import pytest

from tests.conftest import REPO
from vacc_deploy.config import CONFIG_DIR, HOUSE_DIR, available_rows, load_row

PACKAGE = REPO / "vacc_deploy"
#: Imports the package guards itself (the vendor SDK, looked up with importlib.util.find_spec).
OPTIONAL = {"vaststreamx"}


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _req_name(req: str) -> str:
    return req.split(";")[0].split("[")[0].split("<")[0].split(">")[0].split("=")[0].split("!")[0].strip().lower()


def _third_party_imports() -> set[str]:
    """Top-level module names imported anywhere in ``vacc_deploy`` that are not stdlib or the package."""
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != "vacc_deploy"} - OPTIONAL


def test_every_import_is_declared_in_base_or_export() -> None:
    """Base and ``export`` cover every path but the optional backends; a backend's own extra (e.g.
    ``openvino``, imported lazily, the backend says why when it is missing) counts for its runtime."""
    project = _pyproject()["project"]
    extras = project["optional-dependencies"]
    declared = {_req_name(r) for r in project["dependencies"] + extras["export"] + extras["openvino"]}
    dists = metadata.packages_distributions()
    missing = {}
    for module in sorted(_third_party_imports()):
        owners = {d.lower() for d in dists.get(module, [module])}
        if not owners & declared:
            missing[module] = sorted(owners)
    assert not missing, f"imported but not declared in dependencies or the export extra: {missing}"


def test_export_path_needs_only_the_export_extra() -> None:
    """The parity photo and the offline samples come from scikit-image: it must be in ``export``."""
    export = {_req_name(r) for r in _pyproject()["project"]["optional-dependencies"]["export"]}
    assert {"torch", "onnxsim", "safetensors", "scikit-image"} <= export


def test_rows_and_house_weights_are_package_data() -> None:
    """Every row YAML and every house file a row names lives inside the package and is matched by
    the package-data globs."""
    data = _pyproject()["tool"]["setuptools"]["package-data"]
    assert CONFIG_DIR.parent == PACKAGE and HOUSE_DIR.parent == PACKAGE
    files = [p for p in CONFIG_DIR.glob("*.yaml")]
    for row in available_rows():
        house = load_row(row).weights.house
        if house is not None:
            files += [HOUSE_DIR / house.file, HOUSE_DIR / house.file.replace(".safetensors", ".provenance.json")]
    assert len(files) > 16
    for f in files:
        assert f.is_file(), f
        globs = data.get(f"vacc_deploy.{f.parent.name}", [])
        assert any(f.match(g) for g in globs), f"{f} is not shipped by package-data {data}"


def _copy_source(dest: Path) -> Path:
    """The files a wheel is built from: pyproject, README and the package (no caches)."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    shutil.copytree(PACKAGE, dest / "vacc_deploy", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
         ) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{cmd} failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    return out


@pytest.mark.slow
def test_wheel_installs_and_runs_from_another_folder(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    src = _copy_source(tmp_path / "src")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(tmp_path / "dist"), str(src)], tmp_path)
    wheel = next((tmp_path / "dist").glob("vacc_deploy-*.whl"))
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    purelib = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    # dependencies (torch, onnxruntime, ...) from this interpreter's site-packages, after the venv's own
    deps = [p for p in [sysconfig.get_path("purelib"), *site.getsitepackages()] if Path(p).is_dir()]
    (purelib / "_vacc_deploy_test_deps.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", "--no-index",
          "--force-reinstall", str(wheel)], tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VACC_DEPLOY_WEIGHTS")}
    env["VACC_DEPLOY_CACHE"] = str(tmp_path / "cache")
    where = _run([str(py), "-c", "import vacc_deploy.config as c; print(c.CONFIG_DIR)"], elsewhere, env)
    assert Path(where.stdout.strip()).is_relative_to(env_dir), where.stdout
    cli = str(env_dir / "bin" / "vacc-deploy")
    models = _run([cli, "models"], elsewhere, env)
    assert all(row in models.stdout for row in available_rows())
    _run([cli, "export", "lesrcnn_x2", "--weights", "house", "--shape", "1x3x32x32", "--workdir", "w"],
         elsewhere, env)
    assert (elsewhere / "w" / "lesrcnn_x2").is_dir()
    assert list((elsewhere / "w" / "lesrcnn_x2").rglob("model.onnx"))
