"""dedup: the held-frame difference measure and its default threshold, the quality at held positions, and the time
stills save.

threshold: candidate measures on neighbouring frame pairs of bikes.mp4 from frame 40 (frames 0-39 are the quality
gate), made "on twos" and "on threes" losslessly and through x264 round trips at common settings (held pairs: a
measure must stay low), on its real neighbouring frames (slow real motion: it must stay high) and on synthetic
1-pixel pans of one frame. The default `dedup_threshold` sits between the largest held pair and the smallest moving
one of the chosen measure (vsrife/scene.py).

quality: PSNR at the held positions of the twos/threes clips (the multi=2 outputs at held frames' source positions,
against the real frames there) for dedup=1, the frame-drop protocol on the drawings, and the copies the clip holds
(which is what the filter returns there without dedup).

stills: seconds for a clip of stills and motion, with and without dedup.

Run: `python -m benchmarks.dedup [--part threshold|quality|stills ...]`; writes benchmarks/results/dedup.json.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
import vapoursynth as vs

from testkit.animation import held_indices, on_holds, x264_roundtrip
from testkit.frames import decode_rgb
from testkit.samples import fetch_sample
from vsrife.parameters import DEDUP_THRESHOLD
from vsrife.scene import repeat_difference

from . import harness, render
from .schema import ThresholdRow

CLIP = "bikes.mp4"
FIRST = 40  # frames 0-39 are the quality gate: never tuned on
ENCODINGS: tuple[tuple[int, str], ...] = ((18, "medium"), (23, "medium"), (28, "medium"), (18, "veryfast"),
                                          (23, "veryfast"), (28, "veryfast"))
# The encodings the default threshold must hold for; crf 28 at veryfast is measured and shown, beyond them.
COMMON = ENCODINGS[:5]
QUALITY_FRAMES = 61  # frames 40-100: 30 held frames on twos, 40 on threes


def _tensor(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None]


def block_max(img0: torch.Tensor, img1: torch.Tensor) -> float:
    """Largest mean absolute difference over 32x32-pixel blocks, at quarter resolution."""
    small0, small1 = F.avg_pool2d(img0, 4, ceil_mode=True), F.avg_pool2d(img1, 4, ceil_mode=True)
    return float(F.avg_pool2d((small0 - small1).abs().mean(1, keepdim=True), 8, ceil_mode=True).max())


def mean_eighth(img0: torch.Tensor, img1: torch.Tensor) -> float:
    """Mean absolute difference at eighth resolution."""
    return float((F.avg_pool2d(img0, 8, ceil_mode=True) - F.avg_pool2d(img1, 8, ceil_mode=True)).abs().mean())


CANDIDATES: dict[str, Callable[[torch.Tensor, torch.Tensor], float]] = {
    "mean, quarter resolution (chosen)": repeat_difference,
    "mean, eighth resolution": mean_eighth,
    "largest 32-px block, quarter resolution": block_max,
}


def _pairs(frames: np.ndarray, pairs: list[tuple[int, int]]) -> dict[str, list[float]]:
    tensors = [_tensor(frame) for frame in frames]
    return {name: [measure(tensors[i], tensors[j]) for i, j in pairs] for name, measure in CANDIDATES.items()}


def threshold_study(frames: np.ndarray) -> dict[str, object]:
    """Per case the largest held pair and the smallest moving pair of each candidate; the summary over the common
    encodings (COMMON) and the lossless and real cases."""
    rows: list[ThresholdRow] = []

    def add(case: str, kind: str, values: dict[str, list[float]], common: bool = True) -> None:
        pick = max if kind == "held" else min
        rows.append({"case": case, "kind": kind, "pairs": len(next(iter(values.values()))), "common": common,
                     "values": {name: pick(v) for name, v in values.items()}})
        print(rows[-1], flush=True)

    neighbours = [(i, i + 1) for i in range(len(frames) - 1)]
    add("real neighbouring frames", "moving", _pairs(frames, neighbours))
    still = frames[len(frames) // 2]
    pans = np.stack([still[:-1, :-1], still[:-1, 1:], still[1:, :-1]])
    add("one frame panned by 1 pixel (synthetic)", "moving", _pairs(pans, [(0, 1), (0, 2)]))
    for hold in (2, 3):
        held = on_holds(frames, hold)
        index = held_indices(len(frames), hold)
        held_pairs = [(i - 1, i) for i in range(1, len(held)) if index[i] == index[i - 1]]
        moving_pairs = [(i - 1, i) for i in range(1, len(held)) if index[i] != index[i - 1]]
        name = {2: "twos", 3: "threes"}[hold]
        add(f"on {name}, lossless", "held", _pairs(held, held_pairs))
        for crf, preset in ENCODINGS:
            encoded = x264_roundtrip(held, crf, preset)
            common = (crf, preset) in COMMON
            add(f"on {name}, x264 crf {crf} {preset}", "held", _pairs(encoded, held_pairs), common)
            add(f"on {name}, x264 crf {crf} {preset}", "moving", _pairs(encoded, moving_pairs), common)
    summary = {}
    def values(name: str, kind: str) -> list[float]:
        return [r["values"][name] for r in rows if r["kind"] == kind and r["common"]]

    for name in CANDIDATES:
        largest_held, smallest_moving = max(values(name, "held")), min(values(name, "moving"))
        summary[name] = {"largest_held": largest_held, "smallest_moving": smallest_moving,
                         "ratio": smallest_moving / largest_held if largest_held else None,
                         "middle": (largest_held * smallest_moving) ** 0.5}
    return {"clip": CLIP, "first_frame": FIRST, "frames": len(frames), "threshold": DEDUP_THRESHOLD, "rows": rows,
            "summary": summary, "common": [f"crf {crf} {preset}" for crf, preset in COMMON]}


def _rife(clip: vs.VideoNode, **args: object) -> vs.VideoNode:
    return vs.core.vfi.RIFE(clip, device="cpu", precision="fp32", model="4.0", **args)


def _all_frames(clip: vs.VideoNode) -> None:
    for n in range(clip.num_frames):
        clip.get_frame(n)


def quality_study(frames: np.ndarray) -> dict[str, object]:
    """PSNR against the real frames at the held positions (multi=2 outputs at held frames' source positions)."""
    from testkit.frames import clip_from_frames, frame_array, psnr

    rows: list[dict[str, object]] = []
    for hold in (2, 3):
        index = held_indices(len(frames), hold)
        held = [k for k, i in enumerate(index) if i != k and i + hold < len(frames)]
        for encoding in (None, (23, "medium")):
            shown = on_holds(frames, hold)
            if encoding is not None:
                shown = x264_roundtrip(shown, *encoding)
            # without dedup the outputs at these positions are the held frames themselves: the copies
            scores = {"copies": float(np.mean([psnr(shown[k], frames[k]) for k in held]))}
            out = _rife(clip_from_frames(shown), multi=2, dedup=1)
            scores["dedup"] = float(np.mean([psnr(frame_array(out.get_frame(2 * k)), frames[k].transpose(2, 0, 1))
                                             for k in held]))
            # the frame-drop protocol on the drawings: keep every hold-th frame, interpolate with multi=hold
            dropped = _rife(clip_from_frames(np.ascontiguousarray(shown[::hold])), multi=hold)
            scores["frame_drop"] = float(np.mean([psnr(frame_array(dropped.get_frame(k)),
                                                       frames[k].transpose(2, 0, 1)) for k in held]))
            rows.append({"hold": hold, "encoding": "lossless" if encoding is None else
                         f"x264 crf {encoding[0]} {encoding[1]}", "held_frames": len(held), **scores})
            print(rows[-1], flush=True)
    return {"clip": CLIP, "first_frame": FIRST, "frames": len(frames), "model": "4.0", "rows": rows}


def stills_study(frames: np.ndarray, runs: int = 2) -> dict[str, object]:
    """Seconds for every output of multi=2 over 10 moving frames, a 20-frame still and 10 moving frames."""
    from testkit.frames import clip_from_frames

    order = [*range(10), *[10] * 20, *range(11, 21)]
    clip = clip_from_frames(np.ascontiguousarray(frames[order]))
    times: dict[str, float] = {}
    for label, args in (("plain", {}), ("dedup", {"dedup": 1})):
        best = float("inf")
        for _ in range(runs):
            out = _rife(clip, multi=2, **args)
            out.get_frame(0)  # the engine is built at creation; frame 0 is a source frame
            best = min(best, harness.seconds(functools.partial(_all_frames, out)))
        times[label] = best
        print(label, best, flush=True)
    return {"clip": CLIP, "first_frame": FIRST, "source_frames": len(order), "still_frames": 20,
            "output_frames": 2 * len(order), "seconds": times, "runs": runs, "model": "4.0"}


PARTS = ("threshold", "quality", "stills")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", nargs="*", choices=PARTS, default=list(PARTS), help="what to measure (default: all)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    frames = decode_rgb(fetch_sample(CLIP), 250)[FIRST:]
    earlier = harness.read_result("dedup")  # the parts not measured now stay as they were
    data: dict[str, object] = dict(earlier["data"]) if earlier is not None else {}
    if "threshold" in args.part:
        data["threshold"] = threshold_study(frames)
    if "quality" in args.part:
        data["quality"] = quality_study(frames[:QUALITY_FRAMES])
    if "stills" in args.part:
        data["stills"] = stills_study(frames)
    return render.publish({"dedup": data},
                          "python -m benchmarks.dedup")


if __name__ == "__main__":
    sys.exit(main())
