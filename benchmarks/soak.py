"""Memory soak: output frames through the real vspipe binary, resident memory sampled all along.

The source is bikes.mp4 scaled down and looped; RIFE 4.0 doubles it on the CPU. Passes when the resident memory grows
by less than 50 MB over the second half of the run.

Run: `python3 build.py soak` (or `python -m benchmarks.soak [--frames 10000] [--size 320x180]`); writes
benchmarks/results/soak.json (with --name, another result: `build.py bench` writes memory_long_run.json).
"""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import cast

from testkit.samples import fetch_sample

from . import render

GROWTH_LIMIT_MB = 50.0
SAMPLE_SECONDS = 0.5
PROGRESS = re.compile(r"Frame: (\d+)/")

SCRIPT = """\
import vapoursynth as vs
core = vs.core
source = core.bs.VideoSource({source!r}).resize.Bicubic({width}, {height})
source = (source * ({source_frames} // source.num_frames + 1))[:{source_frames}]
core.vfi.RIFE(source, multi=2, device="cpu").set_output()
"""
# VapourSynth's own frame cache may grow to half the RAM (core.max_cache_size) and shrink again as it likes; the long
# run bounds it, so that the filter's own memory weighs more in what it sees
CACHE_LINE = "core.max_cache_size = {cache_mb}\n"


def real_vspipe() -> Path:
    """The vspipe binary itself: the launcher on PATH runs it as a child, which would hide its memory."""
    import vapoursynth

    return Path(vapoursynth.__file__).parent / "vspipe"


def resident_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def soak(frames: int, width: int, height: int, env: dict[str, str],
         cache_mb: int | None = None) -> list[tuple[int, float]]:
    """(output frames done, resident MB) samples of one vspipe run rendering `frames` output frames to nowhere;
    cache_mb: VapourSynth's frame cache limit (None: its default)."""
    with tempfile.TemporaryDirectory() as scratch:
        script = Path(scratch) / "soak.vpy"
        text = SCRIPT.format(source=str(fetch_sample("bikes.mp4")), width=width, height=height,
                             source_frames=frames // 2)
        if cache_mb is not None:
            text = text.replace("core = vs.core\n", "core = vs.core\n" + CACHE_LINE.format(cache_mb=cache_mb))
        script.write_text(text)
        process = subprocess.Popen([str(real_vspipe()), "--progress", str(script), "--"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, env=env)
        done = [0]
        log: list[str] = []
        reader = threading.Thread(target=_follow_progress, args=(process, done, log), daemon=True)
        reader.start()
        samples = []
        while process.poll() is None:
            value = resident_mb(process.pid)
            if value is not None and 0 < done[0] < frames:  # rendering: not start-up, not teardown
                samples.append((done[0], value))
            time.sleep(SAMPLE_SECONDS)
        reader.join()
        if process.returncode != 0:
            raise SystemExit(f"vspipe failed ({process.returncode}): {' '.join(log[-3:])}")
    return samples


def _follow_progress(process: subprocess.Popen[bytes], done: list[int], log: list[str]) -> None:
    """Keep done[0] at the frame count vspipe's --progress reports ("Frame: 123/10000 ...")."""
    assert process.stderr is not None
    stream = cast(io.BufferedReader, process.stderr)
    for chunk in iter(lambda: stream.read1(4096), b""):
        text = chunk.decode(errors="replace")
        log.append(text.strip())
        for match in PROGRESS.finditer(text):
            done[0] = int(match.group(1))


def at_frames(samples: list[tuple[int, float]], frames: int) -> float:
    """Resident MB at the first sample with at least `frames` output frames done (the last one if none)."""
    return next((value for done, value in samples if done >= frames), samples[-1][1])


def measure(frames: int, width: int, height: int, arena_max: int | None = None,
            cache_mb: int | None = None) -> dict[str, object]:
    """Run the soak; the result's data, with whether the growth stays under the limit."""
    env = {key: value for key, value in os.environ.items() if key != "MALLOC_ARENA_MAX"}  # what users have
    if arena_max is not None:
        env["MALLOC_ARENA_MAX"] = str(arena_max)
    started = time.perf_counter()
    samples = soak(frames, width, height, env, cache_mb)
    seconds = time.perf_counter() - started
    checkpoints = [frames * i // 10 for i in range(1, 10)] + [samples[-1][0]]
    curve = [[done, at_frames(samples, done)] for done in checkpoints]
    growth = max(value for done, value in samples if done >= frames // 2) - at_frames(samples, frames // 2)
    for done, value in curve:
        print(f"{done:6d} frames: {value:7.1f} MB", flush=True)
    passed = growth < GROWTH_LIMIT_MB
    print(f"growth over the second half (peak minus the value at half-way): {growth:+.1f} MB "
          f"(limit {GROWTH_LIMIT_MB:.0f} MB): {'pass' if passed else 'FAIL'}")
    return {"frames": frames, "size": f"{width}x{height}", "cache_mb": cache_mb, "arena_max": arena_max,
            "seconds": seconds, "sample_seconds": SAMPLE_SECONDS, "curve": curve, "growth_mb": growth,
            "limit_mb": GROWTH_LIMIT_MB, "passed": passed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=10_000, help="output frames (default 10000)")
    parser.add_argument("--size", default="320x180", help="frame size (default 320x180)")
    parser.add_argument("--arena-max", type=int, default=None,
                        help="run with MALLOC_ARENA_MAX set (for comparisons; users have it unset)")
    parser.add_argument("--cache-mb", type=int, default=None, help="bound VapourSynth's frame cache (MB)")
    parser.add_argument("--name", default="soak", help="the result to write (default soak)")
    parser.add_argument("--no-report", action="store_true", help="write no result")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    data = measure(args.frames, width, height, args.arena_max, args.cache_mb)
    if not args.no_report:
        render.publish({args.name: data}, "python3 build.py soak" if args.name == "soak" else "python3 build.py bench")
    return 0 if data["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
