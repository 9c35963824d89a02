"""What depends on the kind of CPU: precision="auto" follows the CPU's bf16 arithmetic and oneDNN's ISA cap.

ONEDNN_MAX_CPU_ISA caps the instruction set oneDNN uses (it cannot raise it): under a cap below AVX512_CORE_BF16 a
CPU with bf16 arithmetic runs as one without, so precision="auto" must choose fp32 there, as on a plain AVX2 CPU.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from vsrife.precision import cpu_flags, cpu_has_native_bf16, native_bf16, onednn_isa_cap, select_precision
from vsrife.training.trainer import autocast_dtype

AMX_CPU = {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}  # an Intel Xeon with AMX
ZEN4_CPU = {"avx2", "avx512f", "avx512_bf16"}  # an AMD EPYC with AVX512-BF16
AVX2_CPU = {"avx2", "fma"}


@pytest.mark.parametrize(("flags", "cap", "expected"), [
    (AMX_CPU, "", True), (AMX_CPU, "DEFAULT", True), (AMX_CPU, "avx512_core_amx", True),
    (AMX_CPU, "AVX10_1_512_AMX", True), (AMX_CPU, "AVX512_CORE_BF16", True), (AMX_CPU, "AVX10_1_512", True),
    (AMX_CPU, "AVX512_CORE_VNNI", False), (AMX_CPU, "AVX512_CORE", False), (AMX_CPU, "AVX2", False),
    (AMX_CPU, "SSE41", False),
    (ZEN4_CPU, "", True), (ZEN4_CPU, "AVX512_CORE_BF16", True), (ZEN4_CPU, "AVX512_CORE_AMX", True),
    (ZEN4_CPU, "AVX512_CORE", False), (ZEN4_CPU, " avx2 ", False),
    ({"avx2", "amx_bf16"}, "AVX512_CORE_BF16", False),  # AMX alone: the cap rules it out
    (AVX2_CPU, "", False), (AVX2_CPU, "AVX512_CORE_AMX", False), (set(), "", False),
])
def test_native_bf16_needs_the_instructions_and_a_cap_that_allows_them(flags: set[str], cap: str,
                                                                       expected: bool) -> None:
    assert native_bf16(flags, cap) is expected


def test_this_cpu_flags_are_read() -> None:
    flags = cpu_flags()
    assert "flags" not in flags and ":" not in flags
    if os.path.exists("/proc/cpuinfo") and torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        assert "avx2" in flags


def test_auto_precision_follows_this_cpu() -> None:
    native = cpu_has_native_bf16()
    assert native == native_bf16(cpu_flags(), onednn_isa_cap())
    cpu = torch.device("cpu")
    assert select_precision("auto", cpu, mixed=True) == (torch.bfloat16 if native else torch.float32)
    assert select_precision("auto", cpu, mixed=False) == torch.float32
    assert autocast_dtype("auto", cpu) == (torch.bfloat16 if native else None)


# In a fresh process under the cap: the engine's and the trainer's choice, and the ISA oneDNN reports using.
DECISION = """
import torch
from vsrife.precision import select_precision
from vsrife.training.trainer import autocast_dtype
channels_last = torch.channels_last  # a convolution that PyTorch hands to oneDNN, which reads its cap then
torch.nn.functional.conv2d(torch.rand(1, 32, 64, 64).to(memory_format=channels_last),
                           torch.rand(32, 32, 3, 3).to(memory_format=channels_last))
print(select_precision("auto", torch.device("cpu"), mixed=True), autocast_dtype("auto", torch.device("cpu")))
"""


@pytest.mark.parametrize("variable", ["ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"])
def test_auto_precision_under_an_avx2_cap_is_fp32(variable: str) -> None:
    """Capped at AVX2 (every x86-64 CPU we run on has it), any CPU is a plain AVX2 CPU: fp32, in the engine and the
    trainer alike; oneDNN's verbose log shows that the cap reached it."""
    env = {key: value for key, value in os.environ.items() if not key.endswith("_MAX_CPU_ISA")}
    result = subprocess.run([sys.executable, "-c", DECISION], capture_output=True, text=True, timeout=300,
                            env={**env, variable: "AVX2", "ONEDNN_VERBOSE": "1"}, check=True)
    lines = result.stdout.splitlines()
    assert lines[-1] == "torch.float32 None"
    isa = next(line for line in lines if ",isa:" in line)
    assert isa.endswith(("isa:Intel AVX2", "isa:Intel AVX", "isa:Intel SSE4.1")), isa
