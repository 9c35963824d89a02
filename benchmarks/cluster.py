"""`interpolate --cluster local` against one process on the same job, and the cost of one chunk, in one run.

Both routes run in this process (no interpreter start-up in either): `render.interpolate`, then
`cluster.interpolate(address="local")`, which starts a Ray runtime with one worker per core, alternating for
`--rounds`. The cluster's report gives the per-chunk costs from which the time on N GPUs or nodes is estimated.

Run: `.venv/bin/python benchmarks/cluster.py [--rounds 2] [--chunk-frames 50]`; prints the tables and replaces the
"Cluster rendering" section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(Path(__file__).resolve().parent)]

from report import BENCHMARKS_MD, update_section  # noqa: E402
from sample_media import fetch_sample  # noqa: E402

from vsrife import cluster, render  # noqa: E402

SECTION = "## Cluster rendering"
FORMULA_GAP = ("The formula takes the median set-up; the first chunk a fresh worker runs also imports PyTorch "
               "and VapourSynth (the max above), and a local runtime takes a moment to stop: most of the gap. ")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--chunk-frames", type=int, default=50)
    parser.add_argument("--output", type=Path, default=BENCHMARKS_MD)
    args = parser.parse_args()

    source = fetch_sample("bikes.mp4")
    plan = render.plan(source, "rife", render.RateRequest(multi=2), {})
    frames = plan.output_frames
    one: list[float] = []
    clustered: list[float] = []
    reports: list[cluster.ClusterReport] = []
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(args.rounds):
            started = time.perf_counter()
            render.interpolate(plan, Path(scratch) / "one.mp4", overwrite=True, progress=False)
            one.append(time.perf_counter() - started)
            started = time.perf_counter()
            reports.append(cluster.interpolate(plan, Path(scratch) / "cluster.mp4", address="local",
                                               chunk_frames=args.chunk_frames, overwrite=True, progress=False))
            clustered.append(time.perf_counter() - started)
            print(f"one process {one[-1]:.1f} s, local cluster {clustered[-1]:.1f} s", flush=True)

    report = reports[-1]  # the last round: the page cache and the weights cache are warm for both
    workers = os.cpu_count() or 1
    chunk_count = len(report.chunks)
    times = report.times
    # Tasks of the first wave start right away; later ones wait for a free worker
    first_wave = sorted(t.started_at for t in times)[:workers]
    start_s = statistics.median(t - report.submitted_at for t in first_wave)
    setup_s = statistics.median(t.setup_s for t in times)
    setup_max_s = max(t.setup_s for t in times)
    check_s = statistics.median(t.check_s for t in times)
    frame_s = sum(t.encode_s for t in times) / frames  # per output frame, on one worker
    chunk_frames = frames / chunk_count
    waves = math.ceil(chunk_count / workers)
    fixed_s = report.plan_s + report.connect_s + start_s + report.join_s
    predicted = fixed_s + waves * (setup_s + chunk_frames * frame_s + check_s)
    join_per_frame_ms = 1000 * report.join_s / frames
    from bench import cpu_name

    what = (f"bikes.mp4 (250 frames, 640x272) to 500 frames, RIFE 4.0, CPU fp32, libx264 crf 16 into .mp4; "
            f"`--chunk-frames {args.chunk_frames}` gives {chunk_count} chunks; {workers} workers (one per core, one "
            f"thread each); median of {args.rounds} alternating rounds, {datetime.date.today().isoformat()} on "
            f"{cpu_name()}")
    one_s, cluster_s = statistics.median(one), statistics.median(clustered)
    text = (
        f"{SECTION}\n\n"
        f"`benchmarks/cluster.py`: the same job in one process (`render.interpolate`, what `interpolate` runs) and "
        f"on a local Ray cluster (`cluster.interpolate(address=\"local\")`, what `interpolate --cluster local` "
        f"runs), both in the benchmark's process: {what}.\n\n"
        "| route | wall time | output fps |\n| --- | --- | --- |\n"
        f"| one process (torch on {workers} threads) | {one_s:.1f} s | {frames / one_s:.2f} |\n"
        f"| local cluster, {workers} workers | {cluster_s:.1f} s | {frames / cluster_s:.2f} |\n\n"
        "Where the cluster's time goes (last round; times measured inside the tasks):\n\n"
        "| cost | value |\n| --- | --- |\n"
        f"| output checked, audio probed, boundaries placed on scene cuts (`plan`) | {report.plan_s:.2f} s per job |\n"
        f"| Ray started (`connect`) | {report.connect_s:.2f} s per job |\n"
        f"| submission to a task's start (first wave) | {start_s:.2f} s per chunk |\n"
        f"| task set-up: script evaluated, source opened, model loaded (median / max) | {setup_s:.2f} s / "
        f"{setup_max_s:.2f} s per chunk |\n"
        f"| frames rendered and encoded, per worker | {frame_s:.3f} s per output frame |\n"
        f"| frame count of the chunk file checked | {check_s:.3f} s per chunk |\n"
        f"| chunks joined with the audio (`concat`, no re-encoding) | {report.join_s:.2f} s per job "
        f"({join_per_frame_ms:.2f} ms per output frame) |\n\n"
        "Estimate for N workers (GPUs, or nodes), C chunks of F output frames, s seconds per frame on one worker:\n\n"
        "    T(N) = plan + connect + start + ceil(C / N) * (setup + F * s + check) + join\n\n"
        f"With this run's numbers (N = {workers}, C = {chunk_count}, F = {chunk_frames:.0f}) the formula gives "
        f"{predicted:.1f} s against {clustered[-1]:.1f} s measured. {FORMULA_GAP}The fixed cost per chunk, setup + check "
        f"= {setup_s + check_s:.2f} s, is {100 * (setup_s + check_s) / (chunk_frames * frame_s):.1f} % of a "
        f"{chunk_frames:.0f}-frame chunk here; at the default 1000 frames per chunk it is "
        f"{100 * (setup_s + check_s) / (1000 * frame_s):.2f} %. Example: 250,000 output frames (a film at 2x) "
        f"in 250 chunks on 8 GPUs that each make s = 0.01 s per frame: ceil(250 / 8) = 32 waves of "
        f"{setup_s + check_s:.2f} + 1000 x 0.01 s = {32 * (setup_s + check_s + 10):.0f} s, plus the join "
        f"(about {250_000 * join_per_frame_ms / 1000:.0f} s at this run's rate per frame), against "
        f"{250_000 * 0.01:.0f} s of frames on one GPU.\n"
    )
    print(text)
    update_section(SECTION, text, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
