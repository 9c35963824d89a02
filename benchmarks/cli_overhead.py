"""The command line's own cost: `python -m vsrife interpolate --multi 2` against the same graph through
`vspipe -c y4m script.vpy - | ffmpeg` with the same encoder settings, alternating, in one run.

Run: `python -m benchmarks.cli_overhead [--rounds 2] [--frames N]`; writes benchmarks/results/cli_overhead.json.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from testkit.samples import fetch_sample
from vsrife.ffmpeg_binary import ffmpeg_executable

from . import harness, render

ENCODER = ["-c:v", "libx264", "-preset", "medium", "-crf", "16"]  # what interpolate uses for .mp4 by default


def _run(command: str | list[str], shell: bool = False) -> None:
    subprocess.run(command, shell=shell, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def measure(rounds: int, source_frames: int | None = None) -> dict[str, object]:
    """bikes.mp4 (or its first `source_frames` frames) doubled by both routes, `rounds` times each, alternating."""
    import vapoursynth as vs

    source = fetch_sample("bikes.mp4")
    count = source_frames or vs.core.bs.VideoSource(str(source)).num_frames
    cut = [] if source_frames is None else ["--end", str(source_frames - 1)]
    frames = count * 2
    vspipe = Path(sys.executable).with_name("vspipe")
    cli_times: list[float] = []
    pipe_times: list[float] = []
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        script = subprocess.run([sys.executable, "-m", "vsrife", "script", str(source), "--multi", "2", *cut],
                                check=True, capture_output=True, text=True).stdout
        (scratch / "graph.vpy").write_text(script)
        pipeline = (f"{vspipe} -c y4m {scratch / 'graph.vpy'} - | {ffmpeg_executable()} -y -loglevel error "
                    f"-f yuv4mpegpipe -i - {' '.join(ENCODER)} {scratch / 'pipe.mp4'}")
        cli = [sys.executable, "-m", "vsrife", "interpolate", str(source), "-o", str(scratch / "cli.mp4"),
               "--multi", "2", *cut, "--quiet", "--overwrite"]
        for _ in range(rounds):
            cli_times.append(harness.seconds(lambda: _run(cli)))
            pipe_times.append(harness.seconds(lambda: _run(pipeline, shell=True)))
            print(f"cli {cli_times[-1]:.1f} s, vspipe | ffmpeg {pipe_times[-1]:.1f} s", flush=True)
    cli_s, pipe_s = statistics.median(cli_times), statistics.median(pipe_times)
    # Each round's pair ran back to back, so their ratio cancels the machine's drift between rounds.
    overhead = statistics.median(c / p for c, p in zip(cli_times, pipe_times, strict=True))
    return {"frames": frames, "rounds": rounds, "encoder": " ".join(ENCODER), "cli_s": cli_s,
            "cli_fps": frames / cli_s, "pipe_s": pipe_s, "pipe_fps": frames / pipe_s,
            "overhead_percent": 100 * (overhead - 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--frames", type=int, default=None, help="source frames (default: the whole clip)")
    args = parser.parse_args(argv)
    return render.publish({"cli_overhead": measure(args.rounds, args.frames)},
                          f"python -m benchmarks.cli_overhead --rounds {args.rounds}")


if __name__ == "__main__":
    sys.exit(main())
