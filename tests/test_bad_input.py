"""Bad inputs and faults (issue 20's table): each gets one clear line naming the file/key (or a
safe recovery), the exit code of SPEC section 7, no traceback, and nothing half-written left in the
work folder. lesrcnn_x2 with synthetic weights at a small shape keeps every case fast.

In-process cases run ``vacc_deploy.cli.main``; signals, concurrency and read-only file systems
run the CLI as a subprocess.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.helpers import row_variant
from vacc_deploy.cli import main
from vacc_deploy.stage_guard import stage_lock
from vacc_deploy.stage_guard import sweep_stale

ROW = "lesrcnn_x2"
SHAPE = "1x3x32x32"
MODEL = ["--weights", "synthetic", "--shape", SHAPE]
REPO = Path(__file__).resolve().parents[1]
LEFTOVERS = ("*.partial", "*.tmp", "*.lock")


def _png(path: Path, hw: tuple[int, int] = (60, 80), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 256, (*hw, 3), dtype=np.uint8), (5, 5), 0)
    cv2.imwrite(str(path), img)
    return path


def _huge_png(path: Path) -> Path:
    """A PNG whose header claims 100000x100000 pixels (with a tiny payload)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 99))
                     + chunk(b"IEND", b""))
    return path


def _folder(root: Path, name: str, extra: dict[str, Callable[[Path], Path]] | None = None, n: int = 3) -> Path:
    """``root/name`` with ``n`` good 60x80 PNGs and the ``extra`` files (name -> maker)."""
    d = root / name
    d.mkdir()
    for i in range(n):
        _png(d / f"good{i}.png", seed=i)
    for fname, make in (extra or {}).items():
        make(d / fname)
    return d


def _leftovers(*folders: Path) -> list[Path]:
    return [p for f in folders if f.exists() for pat in LEFTOVERS for p in f.rglob(pat)]


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.fixture(scope="module")
def base_work(tmp_path_factory) -> Path:
    """A work folder holding the synthetic lesrcnn_x2 export at 1x3x32x32 (copied by each case)."""
    work = tmp_path_factory.mktemp("base") / "work"
    assert main(["export", ROW, *MODEL, "--workdir", str(work)]) == 0
    return work


@pytest.fixture()
def work(base_work, tmp_path) -> Path:
    shutil.copytree(base_work, tmp_path / "work")
    return tmp_path / "work"


@dataclass
class Case:
    """One row: ``argv(tmp, work)`` -> arguments; the exit code; text every error line must hold;
    how many ``vacc-deploy:`` lines stderr has; a warning the log must hold; whether the work
    folder must stay exactly as it was (checked before any work)."""

    argv: Callable[[Path, Path], list[str]]
    code: int
    needles: tuple[str, ...]
    error_lines: int = 1
    warning: str | None = None
    untouched: bool = False
    absent: tuple[str, ...] = field(default=())


def _evil(path: Path) -> Path:
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {path.parent / 'PWNED'}",))
    path.write_bytes(pickle.dumps(Evil()))
    return path


def _truncated_zip(path: Path) -> Path:
    import torch

    buf = io.BytesIO()
    torch.save({"w": torch.zeros(64, 64)}, buf)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


CASES = {
    "workdir_is_a_file": Case(lambda t, w: ["export", ROW, *MODEL, "--workdir", str(_png(t / "f.png"))], 2,
                              ("f.png", "is a file, not a folder")),
    "run_output_is_a_file": Case(lambda t, w: ["run", ROW, *MODEL, "--input", str(_folder(t, "in")),
                                               "--output", str(_png(t / "o.png")), "--workdir", str(w)], 2,
                                 ("--output", "o.png", "not a folder"), untouched=True),
    "eval_json_folder_is_a_file": Case(lambda t, w: ["eval", ROW, *MODEL, "--precisions", "fp32", "--dataset",
                                                     str(_folder(t, "ev")), "--json", str(_png(t / "x.png") / "r.json"),
                                                     "--workdir", str(w)], 2, ("--json", "r.json"), untouched=True),
    "huge_png_run": Case(lambda t, w: ["run", ROW, *MODEL, "--input", str(_folder(t, "in", {"huge.png": _huge_png})),
                                       "--output", str(t / "out"), "--workdir", str(w)], 1,
                         ("huge.png",), error_lines=2),
    "huge_png_eval": Case(lambda t, w: ["eval", ROW, *MODEL, "--precisions", "fp32", "--dataset",
                                        str(_folder(t, "ev", {"huge.png": _huge_png})), "--workdir", str(w)], 1,
                          ("huge.png",), error_lines=2),
    "huge_png_calib": Case(lambda t, w: ["calib", ROW, *MODEL, "--images", str(_folder(t, "c", {"huge.png": _huge_png})),
                                         "--num", "4", "--workdir", str(w)], 0, (), error_lines=0,
                           warning="huge.png"),
    "tiny_image_eval": Case(lambda t, w: ["eval", ROW, *MODEL, "--precisions", "fp32", "--dataset",
                                          str(_folder(t, "ev", {"tiny.png": lambda p: _png(p, (1, 1))})),
                                          "--workdir", str(w)], 1, ("tiny.png",), error_lines=2),
    "tiny_image_calib": Case(lambda t, w: ["calib", ROW, *MODEL, "--images",
                                           str(_folder(t, "c", {"tiny.png": lambda p: _png(p, (1, 1))})),
                                           "--num", "4", "--workdir", str(w)], 0, (), error_lines=0,
                             warning="tiny.png"),
    "shape_beyond_memory": Case(lambda t, w: ["export", ROW, "--weights", "synthetic", "--shape", "1x3x99999x99999",
                                              "--workdir", str(w)], 2, ("1x3x99999x99999", "GiB"), untouched=True),
    "overlap_negative": Case(lambda t, w: ["run", ROW, *MODEL, "--overlap", "-1", "--input", str(_folder(t, "in")),
                                           "--output", str(t / "out"), "--workdir", str(w)], 2, ("--overlap -1",),
                             untouched=True, absent=("out",)),
    "weights_is_a_directory": Case(lambda t, w: ["export", ROW, "--weights", str(t), "--shape", SHAPE,
                                                 "--workdir", str(w)], 2, ("is a directory",), untouched=True),
    "weights_garbage": Case(lambda t, w: ["export", ROW, "--weights", str(_write(t / "g.pth", b"\0garbage" * 99)),
                                          "--shape", SHAPE, "--workdir", str(w)], 1,
                            ("g.pth", "cannot load checkpoint"), untouched=True),
    "weights_truncated": Case(lambda t, w: ["export", ROW, "--weights", str(_truncated_zip(t / "t.pth")),
                                            "--shape", SHAPE, "--workdir", str(w)], 1,
                              ("t.pth", "cannot load checkpoint"), untouched=True),
    "weights_code_executing_pickle": Case(lambda t, w: ["export", ROW, "--weights", str(_evil(t / "e.pth")),
                                                        "--shape", SHAPE, "--workdir", str(w)], 1,
                                          ("e.pth", "cannot load checkpoint"), untouched=True, absent=("PWNED",)),
    "pipeline_quant_bogus": Case(lambda t, w: ["pipeline", ROW, *MODEL, "--quant", "bogus", "--workdir", str(w)], 2,
                                 ("--quant", "bogus"), untouched=True),
    "pipeline_precisions_bogus": Case(lambda t, w: ["pipeline", ROW, *MODEL, "--precisions", "fp32,bogus",
                                                    "--workdir", str(w)], 2, ("--precisions", "bogus"), untouched=True),
    # cases that already behaved, kept so
    "unknown_row": Case(lambda t, w: ["export", "nope", "--workdir", str(w)], 2, ("unknown row 'nope'",),
                        untouched=True),
    "unknown_yaml_key": Case(lambda t, w: ["export", str(row_variant(t, ROW, quant__mode="x")), *MODEL,
                                           "--workdir", str(w)], 2, ("quant.mode", "unknown key"), untouched=True),
    "truncated_png_run": Case(lambda t, w: ["run", ROW, *MODEL, "--input",
                                            str(_folder(t, "in", {"cut.png": lambda p: _cut(_png(p))})),
                                            "--output", str(t / "out"), "--workdir", str(w)], 1,
                              ("cut.png",), error_lines=2),
    "non_image_calib": Case(lambda t, w: ["calib", ROW, *MODEL, "--images",
                                          str(_folder(t, "c", {"notes.png": lambda p: _write(p, b"not an image")})),
                                          "--num", "4", "--workdir", str(w)], 0, (), error_lines=0,
                            warning="notes.png"),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _cut(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[:200])
    return path


@pytest.mark.parametrize("name", list(CASES))
def test_table_row(name: str, work: Path, tmp_path: Path, capsys, caplog) -> None:
    case = CASES[name]
    args = case.argv(tmp_path, work)
    before = _files(work)
    with caplog.at_level(logging.WARNING):
        code = main(args)
    err = capsys.readouterr().err
    assert code == case.code, err
    assert "Traceback" not in err and "internal error" not in err, err
    lines = [ln.strip() for ln in err.replace("\r", "\n").splitlines() if ln.strip().startswith("vacc-deploy:")]
    assert len(lines) == case.error_lines, err
    assert all(n in lines[0] for n in case.needles), lines
    if case.untouched:  # refused before any work: stderr is that one line, the work folder as it was
        assert [ln for ln in err.splitlines() if ln.strip()] == lines, err
        assert _files(work) == before
    if case.warning:
        assert any(case.warning in r.getMessage() for r in caplog.records), caplog.text
    assert not any((tmp_path / a).exists() for a in case.absent)
    assert _leftovers(tmp_path) == []


def test_run_over_folder_goes_on(work: Path, tmp_path: Path, capsys) -> None:
    """A bad image in a folder is reported; the others are still written; exit 1 at the end."""
    folder = _folder(tmp_path, "in", {"huge.png": _huge_png, "tiny.png": lambda p: _png(p, (1, 1))})
    code = main(["run", ROW, *MODEL, "--input", str(folder), "--output", str(tmp_path / "out"), "--workdir", str(work)])
    err = capsys.readouterr().err
    assert code == 1 and "1 failed" in err and "huge.png" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good0.png", "good1.png", "good2.png", "tiny.png"]


def test_truncated_cached_model_is_rebuilt(work: Path, tmp_path: Path, capsys, caplog) -> None:
    """A cached model.onnx damaged on disk is noticed on reuse (size + sha256 in the manifest) and
    rebuilt with a warning; --force rebuilds a stage that is fine."""
    build = ["build", ROW, *MODEL, "--precision", "fp16", "--workdir", str(work)]
    assert main(build) == 0
    model = next((work / ROW / "build").glob("fp16-*/model.onnx"))
    good = model.read_bytes()
    model.write_bytes(good[:1000])
    with caplog.at_level(logging.WARNING):
        assert main(build) == 0
    out = capsys.readouterr().out
    assert "built" in out and "reused" not in out and "damaged" in caplog.text and model.read_bytes() == good
    assert main(build) == 0 and "reused" in capsys.readouterr().out
    assert main([*build, "--force"]) == 0 and "reused" not in capsys.readouterr().out
    exported = next((work / ROW / "export").glob("*/model.onnx"))
    exported.write_bytes(b"")  # the fp32 model `run` would load
    assert main(["run", ROW, *MODEL, "--input", str(_folder(tmp_path, "in", n=1)), "--output",
                 str(tmp_path / "out"), "--workdir", str(work)]) == 0
    assert _leftovers(work) == []


def test_stale_partial_removed_live_one_kept(tmp_path: Path) -> None:
    """A partial folder whose stage lock nobody holds (its run was killed) is removed by the next
    stage in that folder; one whose lock a live process holds is not."""
    import fcntl

    parent = tmp_path / "build"
    (parent / ".fp16-dead.abc123.partial").mkdir(parents=True)
    (parent / ".fp16-dead.lock").touch()
    (parent / ".fp16-live.def456.partial").mkdir()
    fd = os.open(parent / ".fp16-live.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as another process would hold it
    try:
        with stage_lock(parent / "fp16-other"):
            pass
        assert sorted(p.name for p in parent.iterdir()) == [".fp16-live.def456.partial", ".fp16-live.lock"]
    finally:
        os.close(fd)
    assert sweep_stale(parent) == [parent / ".fp16-live.def456.partial"] and not any(parent.iterdir())


def _cli_proc(args: list[str], **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "vacc_deploy", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def _int8_build(work: Path, images: Path) -> list[str]:
    return ["build", ROW, *MODEL, "--precision", "int8", "--calib-images", str(images), "--num", "3",
            "--workdir", str(work)]


def _wait_for(pattern: str, folder: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    t0 = time.monotonic()
    while not list(folder.glob(pattern)):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < timeout, f"no {pattern} in {folder}"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def int8_reference(base_work, tmp_path_factory) -> tuple[Path, bytes]:
    """(calibration images, model bytes of an uninterrupted int8 build)."""
    root = tmp_path_factory.mktemp("ref")
    images = _folder(root, "calib")
    work = root / "work"
    shutil.copytree(base_work, work)
    assert main(_int8_build(work, images)) == 0
    return images, next((work / ROW / "build").glob("int8-*/model.onnx")).read_bytes()


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGKILL, -9)],
                         ids=["SIGTERM", "SIGINT", "SIGKILL"])
def test_signal_during_calibration(sig: int, code: int, work: Path, int8_reference, capsys) -> None:
    """SIGTERM/SIGINT while the int8 build calibrates: one message, exit 143/130, no partial left.
    SIGKILL leaves its partial folder; the rerun removes it. Every rerun makes the same model bytes."""
    images, reference = int8_reference
    proc = _cli_proc(_int8_build(work, images))
    _wait_for(".int8-*.partial", work / ROW / "build", proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    if sig != signal.SIGKILL:
        assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("vacc-deploy: ")
        assert _leftovers(work) == []
    else:
        assert _leftovers(work)
    assert main(_int8_build(work, images)) == 0 and "built" in capsys.readouterr().out
    assert _leftovers(work) == []
    assert next((work / ROW / "build").glob("int8-*/model.onnx")).read_bytes() == reference


def test_concurrent_identical_builds(work: Path, int8_reference) -> None:
    """Two identical builds into one work folder: the second waits for the first and reuses it."""
    images, reference = int8_reference
    with stage_lock(next((work / ROW / "export").iterdir())):  # hold both at the start line
        procs = [_cli_proc(_int8_build(work, images)) for _ in range(2)]
        time.sleep(1.0)
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    states = sorted("reused" if "reused" in out else "built" for out, _ in outs)
    assert states == ["built", "reused"], outs
    assert any("waiting for another process" in err for _, err in outs)
    assert next((work / ROW / "build").glob("int8-*/model.onnx")).read_bytes() == reference
    assert _leftovers(work) == []


def _unshare_works() -> bool:
    if not shutil.which("unshare") or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False
    r = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o ro tmpfs /mnt"], capture_output=True)
    return r.returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs root and `unshare -m` to mount a read-only file system")
@pytest.mark.parametrize("what", ["workdir", "eval_json"])
def test_read_only_file_system(what: str, work: Path, tmp_path: Path) -> None:
    """A read-only work folder, or an --json into a read-only folder: one line naming the path,
    exit 1, before any work."""
    ro = tmp_path / "ro"
    ro.mkdir()
    if what == "workdir":
        args = ["export", ROW, *MODEL, "--workdir", str(ro / "work")]
        needle = str(ro / "work")
    else:
        args = ["eval", ROW, *MODEL, "--precisions", "fp32", "--dataset", str(_folder(tmp_path, "ev")),
                "--json", str(ro / "res.json"), "--workdir", str(work)]
        needle = str(ro / "res.json")
    before = _files(work)
    cmd = " ".join(f"'{a}'" for a in args)
    script = f"mount -t tmpfs -o ro tmpfs '{ro}' && exec '{sys.executable}' -m vacc_deploy {cmd}"
    r = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    assert needle in lines[0] and "Read-only file system" in lines[0]
    assert _files(work) == before
