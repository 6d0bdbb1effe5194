"""Bad inputs and faults (issue 20's table): each gets one clear line naming the file/key (or a
safe recovery), the exit code of SPEC section 7, no traceback, and nothing half-written left in the
work folder. lesrcnn_x2 with synthetic weights at a small shape keeps every case fast.

In-process cases run ``vacc_deploy.cli.main``; signals, concurrency and read-only file systems
run the CLI as a subprocess.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests import bad_inputs as bad
from tests.helpers import row_variant
from vacc_deploy.cli import main
from vacc_deploy.artifacts.guard import stage_lock, sweep_stale

ROW = "lesrcnn_x2"
SHAPE = "1x3x32x32"
MODEL = ["--weights", "synthetic", "--shape", SHAPE]
REPO = Path(__file__).resolve().parents[1]


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


def _run(t: Path, w: Path, extra: dict | None = None, *opts: str) -> list[str]:
    return ["run", ROW, *MODEL, *opts, "--input", str(bad.folder(t, "in", extra)), "--output", str(t / "out"),
            "--workdir", str(w)]


def _eval(t: Path, w: Path, extra: dict | None = None, *opts: str) -> list[str]:
    return ["eval", ROW, *MODEL, "--precisions", "fp32", *opts, "--dataset", str(bad.folder(t, "ev", extra)),
            "--workdir", str(w)]


def _calib(t: Path, w: Path, extra: dict) -> list[str]:
    return ["calib", ROW, *MODEL, "--images", str(bad.folder(t, "c", extra)), "--num", "4", "--workdir", str(w)]


def _export(w: Path, weights: Path | str = "synthetic", shape: str = SHAPE) -> list[str]:
    return ["export", ROW, "--weights", str(weights), "--shape", shape, "--workdir", str(w)]


HUGE = {"huge.png": bad.huge_png}
TINY = {"tiny.png": lambda p: bad.png(p, (1, 1))}
LOAD = "cannot load checkpoint"

CASES = {
    "workdir_is_a_file": Case(lambda t, w: _export(bad.png(t / "f.png")), 2, ("f.png", "is a file, not a folder")),
    "run_output_is_a_file": Case(lambda t, w: [*_run(t, w), "--output", str(bad.png(t / "o.png"))], 2,
                                 ("--output", "o.png", "not a folder"), untouched=True),
    "eval_json_folder_is_a_file": Case(lambda t, w: _eval(t, w, None, "--json", str(bad.png(t / "x.png") / "r.json")),
                                       2, ("--json", "r.json"), untouched=True),
    "huge_png_run": Case(lambda t, w: _run(t, w, HUGE), 1, ("huge.png",), error_lines=2),
    "huge_png_eval": Case(lambda t, w: _eval(t, w, HUGE), 1, ("huge.png",), error_lines=2),
    "huge_png_calib": Case(lambda t, w: _calib(t, w, HUGE), 0, (), error_lines=0, warning="huge.png"),
    "tiny_image_eval": Case(lambda t, w: _eval(t, w, TINY), 1, ("tiny.png",), error_lines=2),
    "tiny_image_calib": Case(lambda t, w: _calib(t, w, TINY), 0, (), error_lines=0, warning="tiny.png"),
    "shape_beyond_memory": Case(lambda t, w: _export(w, shape="1x3x99999x99999"), 2, ("1x3x99999x99999", "GiB"),
                                untouched=True),
    "overlap_negative": Case(lambda t, w: _run(t, w, None, "--overlap", "-1"), 2, ("--overlap -1",),
                             untouched=True, absent=("out",)),
    "weights_is_a_directory": Case(lambda t, w: _export(w, t), 2, ("is a directory",), untouched=True),
    "weights_garbage": Case(lambda t, w: _export(w, bad.write(t / "g.pth", b"\0garbage" * 99)), 1, ("g.pth", LOAD),
                            untouched=True),
    "weights_truncated": Case(lambda t, w: _export(w, bad.truncated_zip(t / "t.pth")), 1, ("t.pth", LOAD),
                              untouched=True),
    "weights_code_executing_pickle": Case(lambda t, w: _export(w, bad.evil_pickle(t / "e.pth")), 1, ("e.pth", LOAD),
                                          untouched=True, absent=("PWNED",)),
    "pipeline_quant_bogus": Case(lambda t, w: ["pipeline", ROW, *MODEL, "--quant", "bogus", "--workdir", str(w)], 2,
                                 ("--quant", "bogus"), untouched=True),
    "pipeline_precisions_bogus": Case(lambda t, w: ["pipeline", ROW, *MODEL, "--precisions", "fp32,bogus",
                                                    "--workdir", str(w)], 2, ("--precisions", "bogus"), untouched=True),
    # cases that already behaved, kept so
    "unknown_row": Case(lambda t, w: ["export", "nope", "--workdir", str(w)], 2, ("unknown row 'nope'",),
                        untouched=True),
    "unknown_yaml_key": Case(lambda t, w: ["export", str(row_variant(t, ROW, quant__mode="x")), *MODEL,
                                           "--workdir", str(w)], 2, ("quant.mode", "unknown key"), untouched=True),
    "truncated_png_run": Case(lambda t, w: _run(t, w, {"cut.png": lambda p: bad.cut(bad.png(p))}), 1, ("cut.png",),
                              error_lines=2),
    "non_image_calib": Case(lambda t, w: _calib(t, w, {"notes.png": lambda p: bad.write(p, b"not an image")}), 0, (),
                            error_lines=0, warning="notes.png"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_table_row(name: str, work: Path, tmp_path: Path, capsys, caplog) -> None:
    case = CASES[name]
    args = case.argv(tmp_path, work)
    before = bad.files(work)
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
        assert bad.files(work) == before
    if case.warning:
        assert any(case.warning in r.getMessage() for r in caplog.records), caplog.text
    assert not any((tmp_path / a).exists() for a in case.absent)
    assert bad.leftovers(tmp_path) == []


def test_run_over_folder_goes_on(work: Path, tmp_path: Path, capsys) -> None:
    """A bad image in a folder is reported; the others are still written; exit 1 at the end."""
    folder = bad.folder(tmp_path, "in", {"huge.png": bad.huge_png, "tiny.png": lambda p: bad.png(p, (1, 1))})
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
    assert main(["run", ROW, *MODEL, "--input", str(bad.folder(tmp_path, "in", n=1)), "--output",
                 str(tmp_path / "out"), "--workdir", str(work)]) == 0
    assert bad.leftovers(work) == []


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


def _default_sigint() -> None:
    # A test suite started in the background by a non-interactive shell (``pytest &``, nohup)
    # inherits SIGINT ignored, and Python then leaves it ignored: the CLI under test must see the
    # signal as an interactive user's Ctrl-C delivers it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _cli_proc(args: list[str], **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "vacc_deploy", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_default_sigint, **kw)


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
    images = bad.folder(root, "calib")
    work = root / "work"
    shutil.copytree(base_work, work)
    assert main(_int8_build(work, images)) == 0
    return images, next((work / ROW / "build").glob("int8-*/model.onnx")).read_bytes()


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGKILL, -9)],
                         ids=["SIGTERM", "SIGINT", "SIGKILL"])
def test_signal_during_calibration(sig: int, code: int, work: Path, int8_reference, capsys) -> None:
    """SIGTERM/SIGINT while the int8 build calibrates (the ranges stage holds its lock): one
    message, exit 143/130, nothing half-written left. SIGKILL leaves what it leaves; the rerun
    cleans it up. Every rerun makes the same model bytes."""
    images, reference = int8_reference
    proc = _cli_proc(_int8_build(work, images))
    _wait_for(".*.json.lock", work / ROW / "ranges", proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert not list((work / ROW / "ranges").glob("*.json")), "no ranges from an interrupted calibration"
    if sig != signal.SIGKILL:
        assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("vacc-deploy: ")
        assert bad.leftovers(work) == []
    assert main(_int8_build(work, images)) == 0 and "built" in capsys.readouterr().out
    assert bad.leftovers(work) == []
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
    assert bad.leftovers(work) == []


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
        args = ["eval", ROW, *MODEL, "--precisions", "fp32", "--dataset", str(bad.folder(tmp_path, "ev")),
                "--json", str(ro / "res.json"), "--workdir", str(work)]
        needle = str(ro / "res.json")
    before = bad.files(work)
    cmd = " ".join(f"'{a}'" for a in args)
    script = f"mount -t tmpfs -o ro tmpfs '{ro}' && exec '{sys.executable}' -m vacc_deploy {cmd}"
    r = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    assert needle in lines[0] and "Read-only file system" in lines[0]
    assert bad.files(work) == before
