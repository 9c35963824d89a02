"""The `sc=1` detector's metric (vsrife/scene.py) on every neighbouring pair of bikes.mp4, against the default
`sc_threshold`: the largest pair under the threshold and every pair over it.

Run: `python -m benchmarks.scene_metric [--frames 250]`; writes benchmarks/results/scene_metric.json.
"""

from __future__ import annotations

import argparse
import sys

import torch

from testkit.frames import decode_rgb
from testkit.samples import fetch_sample
from vsrife.parameters import SC_THRESHOLD
from vsrife.scene import scene_change_metric

from . import render

CLIP = "bikes.mp4"


def measure(frame_count: int) -> dict[str, object]:
    frames = torch.from_numpy(decode_rgb(fetch_sample(CLIP), frame_count)).permute(0, 3, 1, 2)
    values = [scene_change_metric(frames[i : i + 1], frames[i + 1 : i + 2]) for i in range(len(frames) - 1)]
    below = max(range(len(values)), key=lambda i: values[i] if values[i] <= SC_THRESHOLD else -1.0)
    rows = [{"pair": [below, below + 1], "metric": values[below], "kind": "largest below the threshold"}]
    rows += [{"pair": [i, i + 1], "metric": v, "kind": "cut"} for i, v in enumerate(values) if v > SC_THRESHOLD]
    return {"clip": CLIP, "pairs": len(values), "threshold": SC_THRESHOLD, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=250, help="frames of the clip (default: all 250)")
    args = parser.parse_args(argv)
    return render.publish({"scene_metric": measure(args.frames)},
                          "python -m benchmarks.scene_metric")


if __name__ == "__main__":
    sys.exit(main())
