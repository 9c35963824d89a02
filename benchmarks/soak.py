"""Memory soak: 10,000 output frames through the real vspipe binary, resident memory sampled all along.

Run: `python3 build.py soak` (or `.venv/bin/python benchmarks/soak.py [--frames 10000] [--size 320x180]`). The
source is bikes.mp4 scaled down and looped; RIFE 4.0 doubles it on the CPU. Passes when the resident memory grows
by less than 50 MB over the second half of the run; prints the curve and replaces the "Memory soak" section of
docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import re
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(Path(__file__).resolve().parent)]

from report import update_section  # noqa: E402
from sample_media import fetch_sample  # noqa: E402

SECTION = "## Memory soak"
GROWTH_LIMIT_MB = 50.0
SAMPLE_SECONDS = 0.5
PROGRESS = re.compile(r"Frame: (\d+)/")

# The runs that chose the fix (the plugin's malloc_trim every 64 inferences), before it existed: reproduce them
# by building the plugin of commit d6c642f (no trim) and running this script with `--no-report --arena-max N`.
BEFORE_THE_FIX = """\
Without the fix (the plugin as of commit d6c642f, before `malloc_trim`, run with today's
`python benchmarks/soak.py --no-report --arena-max N`; 2026-11-23, same machine, one run each): growth over the second half +69.6 MB with
`MALLOC_ARENA_MAX=16` (glibc's default on 2 cores) and +8.4 MB with `MALLOC_ARENA_MAX=2`. With the fix, two runs
of `python3 build.py soak` grew by +21.9 MB and by the figure above. Limiting the arenas with `mallopt` when the
plugin loads was also tried and did not flatten the curve: glibc has fixed its arena limit by then.
"""

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
    for chunk in iter(lambda: process.stderr.read1(4096), b""):  # type: ignore[union-attr]
        text = chunk.decode(errors="replace")
        log.append(text.strip())
        for match in PROGRESS.finditer(text):
            done[0] = int(match.group(1))


def at_frames(samples: list[tuple[int, float]], frames: int) -> float:
    """Resident MB at the first sample with at least `frames` output frames done (the last one if none)."""
    return next((value for done, value in samples if done >= frames), samples[-1][1])


def measure(frames: int, width: int, height: int, arena_max: int | None = None,
            section: str = SECTION, cache_mb: int | None = None) -> tuple[str, bool]:
    """Run the soak; returns the BENCHMARKS.md section under `section` and whether the growth is under the limit."""
    import vapoursynth as vs

    from bench import cpu_name

    env = {key: value for key, value in os.environ.items() if key != "MALLOC_ARENA_MAX"}  # what users have
    if arena_max is not None:
        env["MALLOC_ARENA_MAX"] = str(arena_max)
    started = time.perf_counter()
    samples = soak(frames, width, height, env, cache_mb)
    seconds = time.perf_counter() - started
    checkpoints = [frames * i // 10 for i in range(1, 10)] + [samples[-1][0]]
    curve = [(done, at_frames(samples, done)) for done in checkpoints]
    half = at_frames(samples, frames // 2)
    growth = max(value for done, value in samples if done >= frames // 2) - half
    for done, value in curve:
        print(f"{done:6d} frames: {value:7.1f} MB", flush=True)
    passed = growth < GROWTH_LIMIT_MB
    verdict = "pass" if passed else "FAIL"
    print(f"growth over the second half (peak minus the value at half-way): {growth:+.1f} MB "
          f"(limit {GROWTH_LIMIT_MB:.0f} MB): {verdict}")
    rows = "\n".join(f"| {done} | {value:.1f} MB |" for done, value in curve)
    options = f"--frames {frames} --size {width}x{height}" + (f" --cache-mb {cache_mb}" if cache_mb else "")
    command = ("`python3 build.py soak`" if section == SECTION else "`python3 build.py bench`") + \
        f" (`benchmarks/soak.py {options}`)"
    cache = ("VapourSynth's default frame cache" if cache_mb is None else
             f"VapourSynth's frame cache bounded to {cache_mb} MB (`core.max_cache_size`; its default is half "
             "the RAM)")
    text = (
        f"{section}\n\n"
        f"{command}: {frames} output frames of RIFE 4.0 `multi=2` at {width}x{height} on the CPU with default "
        f"settings through the real vspipe binary (bikes.mp4 scaled and looped), {cache}, resident memory of the vspipe "
        f"process sampled every {SAMPLE_SECONDS} s against vspipe's own frame count, `MALLOC_ARENA_MAX` "
        f"{'unset' if arena_max is None else f'={arena_max}'}; {datetime.date.today().isoformat()} on "
        f"{cpu_name()}, VapourSynth R{vs.core.core_version.release_major}, {seconds:.0f} s.\n\n"
        "| output frames done | resident memory |\n| --- | --- |\n" + rows + "\n\n"
        f"Growth over the second half (the peak after half-way minus the value at half-way): {growth:+.1f} MB "
        f"(limit {GROWTH_LIMIT_MB:.0f} MB): {verdict}.\n"
    )
    return text + ("\n" + BEFORE_THE_FIX if section == SECTION else ""), passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=10_000, help="output frames (default 10000)")
    parser.add_argument("--size", default="320x180", help="frame size (default 320x180)")
    parser.add_argument("--arena-max", type=int, default=None,
                        help="run with MALLOC_ARENA_MAX set (for comparisons; users have it unset)")
    parser.add_argument("--cache-mb", type=int, default=None, help="bound VapourSynth's frame cache (MB)")
    parser.add_argument("--no-report", action="store_true", help="do not update docs/BENCHMARKS.md")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    text, passed = measure(args.frames, width, height, args.arena_max, cache_mb=args.cache_mb)
    if not args.no_report:
        update_section(SECTION, text)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
