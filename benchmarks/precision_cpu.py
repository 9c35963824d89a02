"""RIFE 4.0 on the CPU in fp32, bf16 and fp16: why the engine refuses precision="fp16" on the CPU.

Run: `.venv/bin/python benchmarks/precision_cpu.py [--size 256x256] [--repeats 3]`; prints the table and replaces
the "Precision on the CPU" section of docs/BENCHMARKS.md (`build.py bench` includes it too). Random weights (the
cost does not depend on them); median seconds of one forward pass after one warm-up pass, each precision in turn.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import update_section  # noqa: E402

from vsrife.models.rife_v4_0 import RIFE40  # noqa: E402

SECTION = "## Precision on the CPU"
PRECISIONS = (("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16))


def seconds_per_pass(model: RIFE40, frames: tuple[torch.Tensor, ...], repeats: int) -> float:
    times = []
    with torch.inference_mode():
        model(*frames, 0.5, 1.0, False)
        for _ in range(repeats):
            started = time.perf_counter()
            model(*frames, 0.5, 1.0, False)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(width: int = 256, height: int = 256, repeats: int = 3) -> str:
    """The section: seconds per RIFE 4.0 pass in each precision on this CPU."""
    from bench import cpu_name

    torch.manual_seed(0)
    model = RIFE40().eval()
    frames = tuple(torch.rand(1, 3, height, width) for _ in range(2))
    rows = []
    fp32 = 0.0
    for name, dtype in PRECISIONS:
        seconds = seconds_per_pass(model.to(dtype), tuple(f.to(dtype) for f in frames), repeats)
        fp32 = fp32 or seconds
        rows.append(f"| {name} | {seconds:.3f} | {seconds / fp32:.1f}x |")
        print(rows[-1], flush=True)
    return (
        f"{SECTION}\n\n"
        f"One RIFE 4.0 forward pass at {width}x{height} (`benchmarks/precision_cpu.py`, median of {repeats} after a "
        f"warm-up, {datetime.date.today().isoformat()} on {cpu_name()}, {torch.get_num_threads()} threads). "
        "PyTorch runs fp16 convolutions on the CPU far slower than fp32, so the filters refuse `precision=\"fp16\"` "
        "there and name bf16 and fp32 instead.\n\n"
        "| precision | s/pass | vs fp32 |\n| --- | --- | --- |\n" + "\n".join(rows) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="256x256", help="WIDTHxHEIGHT, multiples of 64")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    update_section(SECTION, measure(width, height, args.repeats))


if __name__ == "__main__":
    main()
