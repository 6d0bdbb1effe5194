"""What this machine is and runs: tool versions and the CPU facts that decide int8/fp16 speed and
arithmetic, as recorded in manifests, cache keys and benchmark documents. Torch-free; nothing is
imported to learn a version (package metadata only).
"""

from __future__ import annotations

import functools
import os
import platform
import re
from importlib import metadata
from pathlib import Path
from typing import Any

DISTRIBUTION = "vacc-deploy"
#: Extras of :data:`DISTRIBUTION` whose packages do not shape results (test tools).
_UNRECORDED_EXTRAS = ("test",)
_VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


@functools.lru_cache(maxsize=1)
def _declared_distributions() -> tuple[str, ...]:
    """The distributions this package declares (its dependencies and optional extras, test tools
    left out), read from its installed metadata; () when it is not installed (a bare checkout)."""
    try:
        requirements = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return ()
    names = []
    for req in requirements:
        extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", req)
        if extra and extra.group(1) in _UNRECORDED_EXTRAS:
            continue
        name = re.split(r"[\s;<>=!~\[(]", req.strip(), maxsplit=1)[0]
        if name and name not in names:
            names.append(name)
    return tuple(names)


def tool_versions() -> dict[str, str]:
    """Versions of Python, of this package and of every installed distribution it declares (its
    runtimes, numeric and export libraries): what shapes results, for cache keys and manifests."""
    versions = {"python": platform.python_version()}
    for name in (DISTRIBUTION, *_declared_distributions()):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@functools.lru_cache(maxsize=1)
def _cpu_info() -> dict[str, Any]:
    """CPU model name and the SIMD flags that decide int8/fp16 speed (Linux ``/proc/cpuinfo``; empty
    elsewhere). Read once per process."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return {}
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    wanted = ("avx2", "fma", "avx512f", *_VNNI_FLAGS, "f16c", "avx512_fp16")
    flags = set(fields.get("flags", "").split())
    return {"cpu_model": fields.get("model name", ""), "cpu_flags": [f for f in wanted if f in flags]}


def cpu_has_vnni() -> bool:
    """Whether this CPU has VNNI (AVX512-VNNI, AVX-VNNI or AMX-INT8); False when unknown."""
    return any(f in _cpu_info().get("cpu_flags", []) for f in _VNNI_FLAGS)


def x86_without_vnni() -> bool:
    """True on x86-64 CPUs without VNNI, where ONNX Runtime's fast u8s8 int8 kernels add pairs of
    products in int16 with saturation (8-bit weights can overflow them)."""
    return platform.machine().lower() in ("x86_64", "amd64") and not cpu_has_vnni()


def machine() -> dict[str, Any]:
    """A short description of this machine (for benchmark and manifest records): platform,
    processor, logical CPU count and, on Linux, the CPU model and its relevant SIMD flags."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        **_cpu_info(),
    }
