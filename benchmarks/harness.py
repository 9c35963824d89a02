"""What every benchmark shares: the machine and commit a result comes from, where results go, and timing.

A benchmark measures and writes one result, ``benchmarks/results/<name>.json``: a ``schema.Result`` of its data
type (benchmarks/schema.py: the date, commit, machine and command of the run, and every number its section shows),
checked against that schema when it is written and read. benchmarks/render.py turns the results into
docs/BENCHMARKS.md (``python -m benchmarks.render``); a benchmark ends with ``render.publish``. Nothing here imports
a benchmark.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .schema import Machine, Result, check_result

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BENCHMARKS_MD = ROOT / "docs" / "BENCHMARKS.md"

def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


# The kinds of CPU whose results sit side by side (a benchmark that keeps one result per kind names it
# <name>-<kind>): what decides which precision and which oneDNN kernels run.
CPU_KINDS = {"amx": "Intel with AMX", "avx512-bf16": "AVX512-BF16 without AMX (AMD Zen 4)",
             "avx2": "AVX2 without native bf16 (AMD Zen 3)"}


def cpu_kind() -> str:
    """This CPU's key in CPU_KINDS, from its feature flags."""
    from vsrife.precision import cpu_flags

    flags = cpu_flags()
    return "amx" if "amx_bf16" in flags else "avx512-bf16" if "avx512_bf16" in flags else "avx2"


def machine() -> Machine:
    """What a result depends on besides the code: the CPU, its bf16, torch's threads and the versions."""
    import torch
    import vapoursynth as vs

    from vsrife.precision import cpu_has_native_bf16

    return {"cpu": cpu_name(), "native_bf16": cpu_has_native_bf16(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "vapoursynth": f"R{vs.core.core_version.release_major}"}


def commit() -> str | None:
    """The checkout's commit, with "+changes" when the working tree differs from it; None outside a checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, check=True, capture_output=True,
                              text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, check=True,
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+changes" if dirty else "")


def results_dir() -> Path:
    """benchmarks/results, or $VSRIFE_BENCH_RESULTS: a trial run's folder, which then also gets its BENCHMARKS.md."""
    return Path(os.environ.get("VSRIFE_BENCH_RESULTS") or RESULTS)


def result_path(name: str) -> Path:
    return results_dir() / f"{name}.json"


def document_path() -> Path:
    """Where the rendered document goes: docs/BENCHMARKS.md, or beside a trial run's results."""
    return BENCHMARKS_MD if results_dir() == RESULTS else results_dir() / "BENCHMARKS.md"


def write_result(name: str, data: Mapping[str, Any], command: str) -> Path:
    """Record a run of benchmark ``name``: its data with the date, commit and machine (written atomically);
    schema.SchemaError, writing nothing, when the data do not have the benchmark's type."""
    result: Result[dict[str, Any]] = {"benchmark": name, "date": datetime.date.today().isoformat(),
                                      "commit": commit(), "machine": machine(), "command": command, "data": dict(data)}
    check_result(name, result)
    path = result_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(result, indent=1) + "\n")
    partial.replace(path)
    print(f"wrote {path}", flush=True)
    return path


def read_result(name: str) -> Result[Any] | None:
    """The result ``name`` (checked against its schema), or None when there is none."""
    path = result_path(name)
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    check_result(name, result)
    return result


def time_filter(frames: Any, count: int, filter_name: str = "RIFE", **filter_args: object) -> list[float]:
    """Seconds for each of `count` interpolated frames (odd output frames 3, 5, ...) of `multi=2` through
    core.vfi.<filter_name> on the CPU, end to end (RIFE 4.0 in fp32 unless told), after one warm-up frame."""
    import vapoursynth as vs

    from testkit.frames import clip_from_frames

    clip = clip_from_frames(frames)
    interpolate = getattr(vs.core.vfi, filter_name)
    out = interpolate(clip, multi=2, device="cpu", **{"model": "4.0", "precision": "fp32", **filter_args})
    out.get_frame(1)  # warm-up: weights, allocator, oneDNN primitives
    return [seconds(functools.partial(out.get_frame, 2 * k + 1)) for k in range(1, count + 1)]


def seconds(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def median_seconds(action: Callable[[], object], repeats: int) -> float:
    return statistics.median(seconds(action) for _ in range(repeats))
