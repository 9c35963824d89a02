"""RIFE 4.0 on the CPU in fp32, bf16 and fp16: why the engine refuses precision="fp16" on the CPU.

Random weights (the cost does not depend on them); median seconds of one forward pass after one warm-up pass, each
precision in turn.

Run: `python -m benchmarks.precision_cpu [--size 256x256] [--repeats 3]`; writes
benchmarks/results/precision_cpu.json.
"""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Any

import torch

from vsrife.models.rife_v4_0 import RIFE40

from . import harness, render

PRECISIONS = (("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16))


def measure(width: int = 256, height: int = 256, repeats: int = 3) -> dict[str, object]:
    """Seconds per RIFE 4.0 pass in each precision on this CPU."""
    torch.manual_seed(0)
    model = RIFE40().eval()
    frames = tuple(torch.rand(1, 3, height, width) for _ in range(2))
    rows: list[dict[str, Any]] = []
    fp32 = 0.0
    for name, dtype in PRECISIONS:
        net, pair = model.to(dtype), tuple(f.to(dtype) for f in frames)
        with torch.inference_mode():
            net(*pair, 0.5, 1.0, False)
            seconds = harness.median_seconds(functools.partial(net, *pair, 0.5, 1.0, False), repeats)
        fp32 = fp32 or seconds
        rows.append({"precision": name, "seconds": seconds, "vs_fp32": seconds / fp32})
        print(rows[-1], flush=True)
    return {"width": width, "height": height, "repeats": repeats, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="256x256", help="WIDTHxHEIGHT, multiples of 64")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    return render.publish({"precision_cpu": measure(width, height, args.repeats)},
                          f"python -m benchmarks.precision_cpu --size {args.size} --repeats {args.repeats}")


if __name__ == "__main__":
    sys.exit(main())
