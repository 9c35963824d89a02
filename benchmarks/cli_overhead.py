"""The command line's own cost: `python -m vsrife interpolate --multi 2` against the same graph through
`vspipe -c y4m script.vpy - | ffmpeg` with the same encoder settings, alternating, in one run.

Run: `.venv/bin/python benchmarks/cli_overhead.py [--rounds 2]`; prints the table and replaces the "Command line"
section of docs/BENCHMARKS.md (`build.py bench` includes it too).
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(Path(__file__).resolve().parent)]

from report import BENCHMARKS_MD, update_section  # noqa: E402
from sample_media import fetch_sample  # noqa: E402

from vsrife.media import ffmpeg_executable  # noqa: E402

SECTION = "## Command line"
ENCODER = ["-c:v", "libx264", "-preset", "medium", "-crf", "16"]  # what interpolate uses for .mp4 by default


def timed(command: str | list[str], shell: bool = False) -> float:
    started = time.perf_counter()
    subprocess.run(command, shell=shell, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def measure(rounds: int) -> tuple[list[str], str]:
    """Table rows and the command used, for bikes.mp4 doubled by both routes, `rounds` times each, alternating."""
    import vapoursynth as vs

    source = fetch_sample("bikes.mp4")
    frames = vs.core.bs.VideoSource(str(source)).num_frames * 2
    vspipe = Path(sys.executable).with_name("vspipe")
    cli_times: list[float] = []
    pipe_times: list[float] = []
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        script = subprocess.run([sys.executable, "-m", "vsrife", "script", str(source), "--multi", "2"],
                                check=True, capture_output=True, text=True).stdout
        (scratch / "graph.vpy").write_text(script)
        pipeline = (f"{vspipe} -c y4m {scratch / 'graph.vpy'} - | {ffmpeg_executable()} -y -loglevel error "
                    f"-f yuv4mpegpipe -i - {' '.join(ENCODER)} {scratch / 'pipe.mp4'}")
        cli = [sys.executable, "-m", "vsrife", "interpolate", str(source), "-o", str(scratch / "cli.mp4"),
               "--multi", "2", "--quiet", "--overwrite"]
        for _ in range(rounds):
            cli_times.append(timed(cli))
            pipe_times.append(timed(pipeline, shell=True))
            print(f"cli {cli_times[-1]:.1f} s, vspipe | ffmpeg {pipe_times[-1]:.1f} s", flush=True)
    cli_s, pipe_s = statistics.median(cli_times), statistics.median(pipe_times)
    # Each round's pair ran back to back, so their ratio cancels the machine's drift between rounds.
    overhead = statistics.median(cli / pipe for cli, pipe in zip(cli_times, pipe_times))
    rows = [
        f"| `python -m vsrife interpolate bikes.mp4 -o out.mp4 --multi 2` | {cli_s:.1f} s | {frames / cli_s:.2f} |",
        f"| `vspipe -c y4m graph.vpy - \\| ffmpeg -i - {' '.join(ENCODER)} out.mp4` | {pipe_s:.1f} s "
        f"| {frames / pipe_s:.2f} |",
        f"| overhead of the command line (median of the per-round ratios) | {100 * (overhead - 1):+.1f} % | |",
    ]
    from bench import cpu_name

    return rows, (f"{frames} output frames (640x272, RIFE 4.0, CPU fp32), median of {rounds} alternating rounds, "
                  f"{datetime.date.today().isoformat()} on {cpu_name()}")


def section(rows: list[str], what: str) -> str:
    return (
        f"{SECTION}\n\n"
        f"`python -m vsrife interpolate --multi 2` on bikes.mp4 against the same graph (the `script` command's "
        f"output) through vspipe and ffmpeg with the same encoder settings, in the same run "
        f"(`benchmarks/cli_overhead.py`): {what}. Wall time includes start-up, decoding and encoding.\n\n"
        "| route | wall time | output fps |\n| --- | --- | --- |\n" + "\n".join(rows) + "\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--output", type=Path, default=BENCHMARKS_MD)
    args = parser.parse_args()
    rows, what = measure(args.rounds)
    print(*rows, sep="\n")
    update_section(SECTION, section(rows, what), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
