"""One-sentence explanations for benchmark results that surprise: an int8 or fp16 build of ONNX
Runtime that is not faster than fp32. Read from a benchmark document (SPEC section 6) alone, so a
re-rendered report says the same as the run that measured it. Torch-free; names build settings,
never command-line flags (the CLI adds those)."""

from __future__ import annotations

from typing import Any

from vacc_deploy.backends.ort import NAME as ORT

#: A build counts as "not faster" when its median latency is above this fraction of fp32's.
NOT_FASTER = 0.95
_VNNI = ("avx512_vnni", "avx_vnni", "amx_int8")


def _p50(r: dict[str, Any]) -> float | None:
    lat = r.get("latency_ms") or {}
    return float(lat["p50"]) if isinstance(lat.get("p50"), (int, float)) else None


def _x86_flags(machine: dict[str, Any]) -> set[str] | None:
    """The SIMD flags of the benchmark's machine record when it is an x86-64 CPU with known flags."""
    arch = f"{machine.get('processor', '')} {machine.get('platform', '')}".lower()
    flags = machine.get("cpu_flags")
    return set(flags) if ("x86_64" in arch or "amd64" in arch) and isinstance(flags, list) else None


def _x86_without_vnni(machine: dict[str, Any]) -> bool:
    flags = _x86_flags(machine)
    return flags is not None and not flags & set(_VNNI)


def _x86_without_fp16(machine: dict[str, Any]) -> bool:
    flags = _x86_flags(machine)
    return flags is not None and "avx512_fp16" not in flags


def _int8_note(r: dict[str, Any], p50: float, fp32: float, machine: dict[str, Any]) -> str | None:
    if not _x86_without_vnni(machine) or r.get("int8_weight_bits") == 7:
        return None
    return (f"int8 ({r.get('quant') or '-'}) is not faster than fp32 here ({p50:.1f} vs {fp32:.1f} ms p50) "
            "because this CPU has no VNNI, so ONNX Runtime runs 8-bit weights on its exact int8 kernels "
            "(its fast ones can overflow without VNNI), which run at about fp32 speed; the faster option "
            "is the 7-bit build (build setting reduce_range on, fastest with int8_ops all), at a small "
            "accuracy cost.")


def speed_notes(doc: dict[str, Any] | None) -> list[str]:
    """Sentences for the ONNX Runtime int8/fp16 results of ``doc`` that are not faster than its
    fp32 result (none when there is no fp32 result to compare with)."""
    results = [r for r in (doc or {}).get("results") or [] if r.get("backend") == ORT]
    fp32 = next((_p50(r) for r in results if r.get("precision") == "fp32"), None)
    if not fp32:
        return []
    notes, machine = [], (doc or {}).get("machine") or {}
    for r in results:
        p50 = _p50(r)
        if p50 is None or p50 < NOT_FASTER * fp32:
            continue
        if r.get("precision") == "int8":
            note = _int8_note(r, p50, fp32, machine)
            if note:
                notes.append(note)
        elif r.get("precision") == "fp16" and _x86_without_fp16(machine):
            notes.append(f"fp16 is not faster than fp32 here ({p50:.1f} vs {fp32:.1f} ms p50) because ONNX "
                         "Runtime's CPU provider has no fp16 Conv kernels and runs the fp16 model in float32 "
                         "behind Casts; fp16 is a format for accelerators such as the VACC.")
    return notes
