"""How many coarse-to-fine levels RRIN's flow net should run for a frame size: the measurement behind `levels=0`.

A study, not a benchmark: run it when the rule or the weights change (`python -m benchmarks.studies.rrin_levels
WEIGHTS`). Frame-drop protocol with the network itself (CPU fp32, frames padded by border replication to the
network's size multiple, as the filter pads them): keep the frames before and after, synthesize the middle one at
t = 0.5, PSNR against the real one (full-range RGB), for each number of levels, on
- the held-back end of bikes.mp4 (frames 229-249: the trainer's validation frames, never trained on; frames 0-39
  are the public quality gate and never used here), resized with ffmpeg to several sizes, as the same scene filmed
  at a higher resolution moves by more pixels; triplets of frames 2 apart (i, i+1, i+2) and 4 apart (i, i+2, i+4);
- the synthetic translations of the scale study (benchmarks/studies/scale_rule.py): exact whole-pixel motion of a
  fixed fraction of the frame width, at several sizes.
Its section (benchmarks/sections_rrin.py) shows what vsrife.models.rrin.auto_flow_levels picks for each size and,
per width, the levels that lose the fewest dB to the best levels of any row: the rule. Writes
benchmarks/results/rrin_levels.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from testkit.frames import psnr
from testkit.samples import fetch_sample
from vsrife.models import build_model
from vsrife.models.rrin import RRIN

from .. import render
from .scale_rule import Case, decode_frames, synthetic_cases, uncut_triplets

HELD_BACK = (229, 249)  # bikes.mp4 frames the trainer holds back from bikes.mp4@40: (its last tenth)
LEVELS = (1, 2, 3, 4)
# (width, height, triplets per span) of the held-back bikes frames, resized
BIKES_SIZES = ((320, 136, 6), (640, 272, 6), (1280, 544, 4), (1920, 816, 3))
# (width, height, scenes) and background motion per frame as a fraction of the width, as in the scale study
SYNTHETIC_SIZES = ((320, 180, 3), (640, 360, 3), (1280, 720, 2), (1920, 1080, 1))
SYNTHETIC_MOTIONS = (0.025, 0.05)


def bikes_cases(sizes: Sequence[tuple[int, int, int]]) -> list[Case]:
    path = fetch_sample("bikes.mp4")
    first, last = HELD_BACK
    starts = uncut_triplets(path, first, last)  # i with (i, i+1) and (i+1, i+2) no cut
    cases = []
    for span, picked in ((2, starts), (4, [i for i in starts if i + 2 in starts])):
        for width, height, count in sizes:
            chosen = [picked[round(k)] for k in np.linspace(0, len(picked) - 1, min(count, len(picked)))]
            frames = [decode_frames(path, start, span + 1, width, height)[[0, span // 2, span]] for start in chosen]
            cases.append(Case("bikes", f"bikes.mp4 229-249 {width}x{height}, frames {span} apart",
                              np.stack(frames).astype(np.float32) / 255))
    return cases


def frame_drop_psnr(net: RRIN, triplets: np.ndarray, levels: int) -> float:
    net.flow_levels = levels
    align = net.alignment(1.0)
    scores = []
    with torch.inference_mode():
        for triplet in triplets:
            img0, middle, img1 = (torch.from_numpy(frame).permute(2, 0, 1)[None] for frame in triplet)
            height, width = img0.shape[2:]
            pad = (0, -width % align, 0, -height % align)
            out = net(F.pad(img0, pad, mode="replicate"), F.pad(img1, pad, mode="replicate"), 0.5, 1.0, False)
            scores.append(psnr(out[0, :, :height, :width].numpy(), middle[0].numpy()))
    return float(np.mean(scores))


def measure(weights: Path, levels: Sequence[int], sizes_limit: int | None) -> dict[str, object]:
    started = time.perf_counter()
    net = build_model("rrin", {"model": torch.load(weights, map_location="cpu", weights_only=True)})
    assert isinstance(net, RRIN)
    cases = bikes_cases(BIKES_SIZES[:sizes_limit]) + synthetic_cases(SYNTHETIC_SIZES[:sizes_limit], SYNTHETIC_MOTIONS)
    rows = []
    for case in cases:
        case_started = time.perf_counter()
        scores = {count: frame_drop_psnr(net, case.triplets, count) for count in levels}
        average = float(np.mean([psnr((t[0] + t[2]) / 2, t[1]) for t in case.triplets]))
        rows.append({"group": case.group, "label": case.label, "width": case.width, "height": case.height,
                     "triplets": len(case.triplets), "scores": {str(k): v for k, v in scores.items()},
                     "frame_average": average})
        print(f"{case.label}: " + ", ".join(f"{k}: {v:.2f}" for k, v in scores.items())
              + f" (average {average:.2f}; {time.perf_counter() - case_started:.0f} s)", flush=True)
    return {"minutes": (time.perf_counter() - started) / 60, "weights": f"{weights.parent.name}/{weights.name}",
            "results": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", type=Path, help="an RRIN weight file (a run's rrin_fp16.pth, or the shipped one)")
    parser.add_argument("--levels", type=int, nargs="+", default=list(LEVELS))
    parser.add_argument("--sizes", type=int, default=None, help="only the first N sizes of each list (a trial)")
    parser.add_argument("--no-record", action="store_true", help="print only; write no result")
    args = parser.parse_args(argv)
    data = measure(args.weights, args.levels, args.sizes)
    if args.no_record:
        return 0
    return render.publish({"rrin_levels": data}, f"python -m benchmarks.studies.rrin_levels {args.weights.name}")


if __name__ == "__main__":
    sys.exit(main())
