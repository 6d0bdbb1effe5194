"""speed_notes: one sentence for each ONNX Runtime int8/fp16 result that is not faster than fp32,
read from the benchmark document alone (its machine record, not this machine)."""

from __future__ import annotations

import pytest

from vacc_deploy.benchmark.notes import speed_notes

AVX2 = {"processor": "x86_64", "platform": "Linux-x86_64", "cpu_flags": ["avx2", "fma", "f16c"]}
VNNI = {**AVX2, "cpu_flags": ["avx2", "fma", "f16c", "avx512f", "avx512_vnni"]}
ARM = {"processor": "aarch64", "platform": "Linux-aarch64", "cpu_flags": []}


def _doc(machine: dict, fp32: float, fp16: float, int8: float, bits: int = 8) -> dict:
    def r(precision: str, p50: float, **kw: object) -> dict:
        return {"backend": "onnxruntime", "precision": precision, "quant": None, "latency_ms": {"p50": p50}, **kw}
    return {"machine": machine, "results": [r("fp32", fp32), r("fp16", fp16),
                                            r("int8", int8, quant="kl_divergence", int8_weight_bits=bits)]}


def test_slow_int8_without_vnni_says_why_and_names_the_7bit_build() -> None:
    notes = speed_notes(_doc(AVX2, 376.0, 402.0, 410.0))
    assert len(notes) == 2
    int8 = next(n for n in notes if n.startswith("int8"))
    assert "no VNNI" in int8 and "exact int8 kernels" in int8 and "7-bit build" in int8 and "410.0 vs 376.0" in int8
    assert "--" not in int8  # library text names build settings, never CLI flags
    assert any(n.startswith("fp16") and "Casts" in n for n in notes)


@pytest.mark.parametrize("machine, fp16, int8, bits", [
    (AVX2, 300.0, 250.0, 8),   # both faster: nothing to explain
    (VNNI, 300.0, 400.0, 8),   # VNNI: the no-VNNI reason does not apply
    (AVX2, 300.0, 400.0, 7),   # already the 7-bit build
    (ARM, 400.0, 400.0, 8),    # not x86: no claim about its kernels
])
def test_no_note_where_the_reason_does_not_hold(machine: dict, fp16: float, int8: float, bits: int) -> None:
    assert not [n for n in speed_notes(_doc(machine, 376.0, fp16, int8, bits)) if n.startswith("int8")]
    if fp16 < 376.0 or machine is ARM:
        assert not [n for n in speed_notes(_doc(machine, 376.0, fp16, int8, bits)) if n.startswith("fp16")]


def test_no_fp32_no_notes() -> None:
    assert speed_notes({"results": [{"backend": "onnxruntime", "precision": "int8", "latency_ms": {"p50": 1}}]}) == []
    assert speed_notes(None) == []
