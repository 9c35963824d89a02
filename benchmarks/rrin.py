"""RRIN through core.vfi.RRIN: seconds per interpolated frame in fp32 and bf16, and the peak memory of one pass, at
the default levels=0 (the coarse-to-fine levels auto_flow_levels picks for the size).

Speed: bikes.mp4 at 640x272 and bigbuckbunny.mp4 at 1280x720 on the CPU. Memory: one fresh process per case
(testkit/memory_probe.py) at 1280x720 untiled and 3840x2160 with tile=512, CPU fp32. Until our weights ship, RRIN
runs seeded random weights: the cost of a pass does not depend on the weights' values.

Run: `python -m benchmarks.rrin [--frames 3] [--weights FILE] [--memory-cases 1280x720:0 3840x2160:512]`; writes
benchmarks/results/rrin_speed.json and rrin_memory.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from testkit import memory_probe
from testkit.frames import decode_rgb, save_rrin_state
from testkit.samples import fetch_sample
from vsrife import registry
from vsrife.models.rrin import auto_flow_levels

from . import harness, render
from .speed import CASES

PRECISIONS = ("fp32", "bf16")
MEMORY_CASES = ((1280, 720, 0), (3840, 2160, 512))  # (width, height, tile)
OVERLAP = 64


def weights_and_label(weights: Path | None, scratch: Path) -> tuple[Path | None, str]:
    """The RRIN weights to measure (None: the shipped ones) and how the tables name them."""
    if weights is not None:
        return weights, f"weights {weights.name}"
    if registry.get_model("rrin").released:
        return None, "shipped weights"
    return save_rrin_state(scratch / "rrin_random.pth"), "seeded random weights, same cost"


def filter_args(weights: Path | None) -> dict[str, str]:
    """model="rrin" with the shipped weights, or with `weights` (trained or seeded random) as model_path."""
    return {"model": "rrin"} if weights is None else {"model": "rrin", "model_path": str(weights)}


def measure_speed(frame_count: int, weights: Path | None, label: str,
                  cases: tuple[tuple[str, int, int], ...] = CASES) -> dict[str, object]:
    rows = []
    for name, width, height in cases:
        frames = decode_rgb(fetch_sample(name), frame_count + 3, width=width, height=height)
        for precision in PRECISIONS:
            seconds = statistics.median(harness.time_filter(frames, frame_count, "RRIN", precision=precision,
                                                            **filter_args(weights)))
            rows.append({"model": f"RRIN ({label})", "size": f"{width}x{height}", "device": f"CPU {precision}",
                         "seconds": seconds, "levels": auto_flow_levels(width, height)})
            print(rows[-1], flush=True)
    return {"frames": frame_count, "rows": rows}


def measure_memory(weights: Path | None, cases: tuple[tuple[int, int, int], ...]) -> dict[str, object]:
    """Peak resident memory of one RRIN pass in a fresh process (CPU fp32), untiled and tiled."""
    rows = []
    for width, height, tile in cases:
        options = ["--model", "rrin", "--width", str(width), "--height", str(height), "--tile", str(tile),
                   "--overlap", str(OVERLAP), "--threads", str(torch.get_num_threads()), "--levels", "0"]
        if weights is not None:
            options += ["--weights", str(weights)]
        output = subprocess.run(memory_probe.command(*options), check=True, capture_output=True, text=True,
                                cwd=memory_probe.ROOT).stdout
        run = json.loads(output.splitlines()[-1])
        rows.append({"size": f"{width}x{height}", "levels": auto_flow_levels(width, height),
                     "tiling": f"tile={tile} ({run['tiles']} tiles)" if tile else "untiled",
                     "peak_gib": run["peak_rss"] / 2**30, "growth_gib": (run["peak_rss"] - run["rss_before"]) / 2**30,
                     "seconds": run["seconds"]})
        print(rows[-1], flush=True)
    return {"overlap": OVERLAP, "rows": rows}


def _case(text: str) -> tuple[int, int, int]:
    size, _, tile = text.partition(":")
    width, height = size.split("x")
    return int(width), int(height), int(tile or 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=3, help="RRIN frames timed per case")
    parser.add_argument("--weights", type=Path, default=None,
                        help="RRIN weights to measure instead of the shipped ones (e.g. a training run's)")
    parser.add_argument("--sizes", nargs="*", default=None,
                        help="time only the cases of these sizes (default: 640x272 1280x720)")
    parser.add_argument("--memory-cases", nargs="*", type=_case, default=list(MEMORY_CASES),
                        metavar="WxH:TILE", help="memory cases (default 1280x720:0 3840x2160:512)")
    args = parser.parse_args(argv)
    command = "python -m benchmarks.rrin " + " ".join(argv if argv is not None else sys.argv[1:])
    with tempfile.TemporaryDirectory() as scratch:
        weights, label = weights_and_label(args.weights, Path(scratch))
        cases = tuple(c for c in CASES if args.sizes is None or f"{c[1]}x{c[2]}" in args.sizes)
        results = {"rrin_speed": measure_speed(args.frames, weights, label, cases)}
        if args.memory_cases:
            results["rrin_memory"] = measure_memory(weights, tuple(args.memory_cases))
    return render.publish(results, command.strip())


if __name__ == "__main__":
    sys.exit(main())
