"""`interpolate --cluster local` against one process on the same job, and the cost of one chunk, in one run.

Both routes run in this process (no interpreter start-up in either): `render.interpolate`, then
`cluster.interpolate(address="local")`, which starts a Ray runtime with one worker per core, alternating for
`--rounds`. The cluster's report gives the per-chunk costs from which the time on N GPUs or nodes is estimated.

Run: `python -m benchmarks.cluster [--rounds 2] [--chunk-frames 50] [--frames N]`; writes
benchmarks/results/cluster.json.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from testkit.samples import fetch_sample
from vsrife import cluster, planning
from vsrife import render as rendering

from . import render


def measure(rounds: int, chunk_frames: int, source_frames: int | None = None) -> dict[str, object]:
    """Both routes, alternating; the cluster's costs from its last round (page cache and weights warm)."""
    source = fetch_sample("bikes.mp4")
    end = None if source_frames is None else source_frames - 1
    plan = planning.plan(source, "rife", planning.RateRequest(multi=2), {}, end=end)
    frames = plan.output_frames
    one: list[float] = []
    clustered: list[float] = []
    reports: list[cluster.ClusterReport] = []
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(rounds):
            started = time.perf_counter()
            rendering.interpolate(plan, Path(scratch) / "one.mp4", overwrite=True, progress=False)
            one.append(time.perf_counter() - started)
            started = time.perf_counter()
            reports.append(cluster.interpolate(plan, Path(scratch) / "cluster.mp4", address="local",
                                               chunk_frames=chunk_frames, overwrite=True, progress=False))
            clustered.append(time.perf_counter() - started)
            print(f"one process {one[-1]:.1f} s, local cluster {clustered[-1]:.1f} s", flush=True)

    report = reports[-1]
    workers = os.cpu_count() or 1
    chunks = len(report.chunks)
    times = report.times
    # Tasks of the first wave start right away; later ones wait for a free worker
    first_wave = sorted(t.started_at for t in times)[:workers]
    start_s = statistics.median(t - report.submitted_at for t in first_wave)
    setup_s = statistics.median(t.setup_s for t in times)
    check_s = statistics.median(t.check_s for t in times)
    frame_s = sum(t.encode_s for t in times) / frames  # per output frame, on one worker
    per_chunk = frames / chunks
    fixed_s = report.plan_s + report.connect_s + start_s + report.join_s
    join_ms = 1000 * report.join_s / frames
    one_s, cluster_s = statistics.median(one), statistics.median(clustered)
    return {
        "rounds": rounds, "chunk_frames": chunk_frames, "chunks": chunks, "workers": workers, "frames": frames,
        "one_s": one_s, "one_fps": frames / one_s, "cluster_s": cluster_s, "cluster_fps": frames / cluster_s,
        "plan_s": report.plan_s, "connect_s": report.connect_s, "start_s": start_s, "setup_s": setup_s,
        "setup_max_s": max(t.setup_s for t in times), "frame_s": frame_s, "check_s": check_s,
        "join_s": report.join_s, "join_ms_per_frame": join_ms,
        "predicted_s": fixed_s + math.ceil(chunks / workers) * (setup_s + per_chunk * frame_s + check_s),
        "measured_s": clustered[-1], "fixed_per_chunk_s": setup_s + check_s,
        "fixed_share_percent": 100 * (setup_s + check_s) / (per_chunk * frame_s),
        "fixed_share_default_percent": 100 * (setup_s + check_s) / (1000 * frame_s),
        # 250,000 output frames (a film at 2x) in 250 chunks on 8 GPUs that each make 0.01 s per frame
        "example_waves_s": 32 * (setup_s + check_s + 10), "example_join_s": 250_000 * join_ms / 1000,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--chunk-frames", type=int, default=50)
    parser.add_argument("--frames", type=int, default=None, help="source frames (default: all 250 of bikes.mp4)")
    args = parser.parse_args(argv)
    return render.publish({"cluster": measure(args.rounds, args.chunk_frames, args.frames)},
                          f"python -m benchmarks.cluster --rounds {args.rounds} --chunk-frames {args.chunk_frames}")


if __name__ == "__main__":
    sys.exit(main())
