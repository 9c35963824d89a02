"""Memory model of one untiled pass: peak RSS growth vs padded pixel count, CPU fp32, torch.inference_mode.

Each size runs in a fresh process (tests/memory_probe.py), so every peak is that pass's own. The pass's cost is
VmHWM at the end minus VmRSS just before it (torch, the weights and the frames are already resident); a
least-squares line over the sizes gives bytes per padded pixel (slope) and a constant. Prints a table:

    .venv/bin/python benchmarks/memory_rrin.py                 # RRIN and RIFE 4.0 at the default sizes
    .venv/bin/python benchmarks/memory_rrin.py --models rrin --sizes 256x256 512x512
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PROBE = ROOT / "tests" / "memory_probe.py"
DEFAULT_SIZES = {
    "rrin": ("256x256", "640x272", "512x512", "1280x720"),
    "4.0": ("640x272", "960x540", "1280x720", "1920x1080", "2560x1440"),
}
MIB = 1 << 20


def measure(model: str, width: int, height: int, threads: int) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, str(PROBE), "--model", model, "--width", str(width), "--height", str(height),
         "--threads", str(threads)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def padded_pixels(width: int, height: int, align: int) -> int:
    return (-(-width // align) * align) * (-(-height // align) * align)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--sizes", nargs="+", default=None, help="WxH; default: per model, see DEFAULT_SIZES")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    for model in args.models:
        rows = []
        for size in args.sizes or DEFAULT_SIZES[model]:
            width, height = (int(v) for v in size.split("x"))
            run = measure(model, width, height, args.threads)
            pixels = padded_pixels(width, height, int(run["align"]))  # type: ignore[arg-type]
            growth = int(run["peak_rss"]) - int(run["rss_before"])  # type: ignore[arg-type]
            rows.append((size, pixels, growth, int(run["rss_before"]), float(run["seconds"])))  # type: ignore[arg-type]
            print(f"{model:>5} {size:>10} padded {pixels:>9} px  before {rows[-1][3] / MIB:7.0f} MiB  "
                  f"pass +{growth / MIB:7.0f} MiB  ({growth / pixels:6.0f} B/px)  {rows[-1][4]:6.1f} s", flush=True)
        if len(rows) >= 2:
            slope, constant = np.polyfit([r[1] for r in rows], [r[2] for r in rows], 1)
            worst = max(abs(r[2] - (slope * r[1] + constant)) for r in rows)
            print(f"{model:>5} fit: {slope:.0f} bytes per padded pixel + {constant / MIB:.0f} MiB "
                  f"(largest residual {worst / MIB:.0f} MiB)\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
