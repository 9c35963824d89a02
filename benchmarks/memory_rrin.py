"""Memory model of one untiled pass: peak RSS growth vs padded pixel count, CPU fp32, torch.inference_mode.

Each size runs in a fresh process (testkit/memory_probe.py), so every peak is that pass's own. The pass's cost is
VmHWM at the end minus VmRSS just before it (torch, the weights and the frames are already resident); a
least-squares line over the sizes gives bytes per padded pixel (slope) and a constant: the numbers the nets'
memory_bytes_per_pixel hold for tile=0.

    python -m benchmarks.memory_rrin                 # RRIN (one level and three) and RIFE 4.0 at the default sizes
    python -m benchmarks.memory_rrin --models rrin --sizes 256x256 512x512

Writes benchmarks/results/memory_model.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass

import numpy as np

from testkit import memory_probe

from . import render

DEFAULT_SIZES = {
    "rrin": ("256x256", "640x272", "512x512", "1280x720"),
    "rrin@3": ("256x256", "640x272", "512x512", "1280x720"),
    "4.0": ("640x272", "960x540", "1280x720", "1920x1080", "2560x1440"),
}
LABELS = {"rrin": "RRIN", "rrin@3": "RRIN, levels=3", "4.0": "RIFE 4.0"}
MIB = 1 << 20


@dataclass(frozen=True)
class Pass:
    """What testkit/memory_probe.py measured of one untiled pass."""

    align: int
    rss_before: int
    peak_rss: int
    seconds: float


def probe(model: str, width: int, height: int, threads: int) -> Pass:
    """One pass of `model` (a registry name; "rrin@N": RRIN's flow net over N levels) in a fresh process."""
    name, _, levels = model.partition("@")
    output = subprocess.run(memory_probe.command("--model", name, "--width", str(width), "--height", str(height),
                                                 "--threads", str(threads), "--levels", levels or "1"),
                            check=True, capture_output=True, text=True, cwd=memory_probe.ROOT).stdout
    run = json.loads(output.strip().splitlines()[-1])
    return Pass(int(run["align"]), int(run["rss_before"]), int(run["peak_rss"]), float(run["seconds"]))


def padded_pixels(width: int, height: int, align: int) -> int:
    return (-(-width // align) * align) * (-(-height // align) * align)


def fit(model: str, sizes: list[str], threads: int) -> dict[str, object]:
    points = []
    for size in sizes:
        width, height = (int(v) for v in size.split("x"))
        run = probe(model, width, height, threads)
        pixels = padded_pixels(width, height, run.align)
        growth = run.peak_rss - run.rss_before
        points.append((pixels, growth))
        print(f"{model:>5} {size:>10} padded {pixels:>9} px  pass +{growth / MIB:7.0f} MiB  "
              f"({growth / pixels:6.0f} B/px)  {run.seconds} s", flush=True)
    slope, constant = np.polyfit([p for p, _ in points], [g for _, g in points], 1) if len(points) >= 2 else (0, 0)
    return {"model": LABELS.get(model, model), "bytes_per_pixel": float(slope), "constant_mib": float(constant) / MIB,
            "sizes": f"{sizes[0]} to {sizes[-1]}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--sizes", nargs="+", default=None, help="WxH; default: per model, see DEFAULT_SIZES")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    fits = [fit(model, args.sizes or list(DEFAULT_SIZES[model]), args.threads) for model in args.models]
    return render.publish({"memory_model": {"fits": fits}},
                          "python -m benchmarks.memory_rrin")


if __name__ == "__main__":
    sys.exit(main())
