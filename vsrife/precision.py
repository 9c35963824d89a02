"""The precision a filter's net runs in: ``precision=`` resolved for the device, and whether this CPU has bf16
arithmetic that oneDNN may use (what ``auto`` decides on the CPU)."""

from __future__ import annotations

import os
from collections.abc import Collection

import torch

from .errors import EngineError
from .parameters import PARAMETERS

# The dtype of each precision the table's row names (tests/test_parameters.py: the same words).
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

# oneDNN's ISA caps (ONEDNN_MAX_CPU_ISA) that leave it no AVX512-BF16, and those that leave it no AMX either.
_CAPS_WITHOUT_AVX512_BF16 = frozenset({"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE",
                                       "AVX512_CORE_VNNI"})
_CAPS_WITHOUT_AMX = _CAPS_WITHOUT_AVX512_BF16 | {"AVX512_CORE_BF16", "AVX10_1_512", "AVX512_CORE_FP16"}


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            return frozenset(next((line for line in cpuinfo if line.startswith("flags")), "").split()[2:])
    except OSError:
        return frozenset()


def onednn_isa_cap() -> str:
    """The instruction set oneDNN is capped at (ONEDNN_MAX_CPU_ISA, or its old name DNNL_MAX_CPU_ISA); "" if none."""
    return (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").strip().upper()


def native_bf16(flags: Collection[str], isa_cap: str) -> bool:
    """Whether oneDNN computes bf16 convolutions in bf16 arithmetic: the CPU has AVX512-BF16 or AMX-BF16 (`flags`,
    as /proc/cpuinfo names them) and the cap (`isa_cap`, an ONEDNN_MAX_CPU_ISA value; "" for none) lets it use it."""
    cap = isa_cap.strip().upper()
    return (("avx512_bf16" in flags and cap not in _CAPS_WITHOUT_AVX512_BF16)
            or ("amx_bf16" in flags and cap not in _CAPS_WITHOUT_AMX))


def cpu_has_native_bf16() -> bool:
    """True where bf16 convolutions beat fp32: this CPU has bf16 arithmetic and oneDNN may use it."""
    return native_bf16(cpu_flags(), onednn_isa_cap())


def select_precision(name: str, device: torch.device, mixed: bool = False) -> torch.dtype:
    """Resolve `auto`, `fp32`, `fp16` or `bf16` for the device.

    auto: fp16 on CUDA; on the CPU bf16 for nets that keep their flow, warps and blend in float32 (mixed) when the
    CPU has native bf16 (docs/BENCHMARKS.md, "CPU peer": the quality it keeps), fp32 otherwise.
    """
    requested = name.strip().lower()
    if requested == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if device.type == "cpu" and mixed and cpu_has_native_bf16() else torch.float32
    if requested not in PRECISIONS:
        raise EngineError(f"precision '{name}' is not supported; choose {PARAMETERS['precision'].allowed_words()}")
    if requested == "fp16" and device.type == "cpu":
        # PyTorch's CPU convolutions in fp16 are far slower than fp32 (benchmarks/precision_cpu.py measures it).
        raise EngineError("precision 'fp16' is not supported on the CPU (PyTorch runs it many times slower than "
                          "fp32 there); use 'bf16' or 'fp32'")
    if requested == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise EngineError(f"precision 'bf16' is not supported on {device}; choose auto, fp32 or fp16")
    return PRECISIONS[requested]
