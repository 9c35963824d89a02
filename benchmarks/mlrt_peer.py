"""RIFE 4.0 on the CPU: ours against vs-mlrt's OpenVINO plugin (`core.ov`), same weights, same frames, same run.

Needs the `bench` extra (`pip install -e .[bench]`). Our module is exported to ONNX in vs-mlrt's input layout and fed
to `core.ov.Model` the way vsmlrt.py builds its clips (testkit/mlrt.py); both are timed on bigbuckbunny.mp4 at
1280x720 in alternating rounds. Quality: PSNR of every runtime's frames against our fp32 frames, and the frame-drop
protocol (the clip's even frames are interpolated, the real odd frames are the truth).

Run: `python -m benchmarks.mlrt_peer [--frames 5] [--rounds 4]`; writes benchmarks/results/mlrt_peer.json.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import vapoursynth as vs

from testkit import mlrt
from testkit.frames import clip_from_frames, decode_rgb, psnr
from testkit.samples import fetch_sample
from vsrife.models.rife_v4_0 import RIFE40
from vsrife.precision import select_precision

from . import harness, render

SAMPLE = "bigbuckbunny.mp4"  # 1280x720
SAMPLE_FRAMES = 132
# short rounds, many of them: on a shared machine a burst of other work then lands on every runtime alike
ROUNDS = 4


@dataclass
class Runtime:
    name: str
    build: Callable[[vs.VideoNode], vs.VideoNode]  # RGBS clip -> its midpoints clip
    seconds: list[float] = field(default_factory=list)
    psnr_vs_ours: list[float] = field(default_factory=list)
    psnr_vs_real: list[float] = field(default_factory=list)


def runtimes(network: Path) -> list[Runtime]:
    """Ours and core.ov in fp32 and bf16; ours fp32 first: it is what the others are compared with."""
    auto = "bf16" if select_precision("auto", torch.device("cpu"), mixed=True) == torch.bfloat16 else "fp32"
    return [
        Runtime("ours (core.vfi.RIFE) fp32", lambda clip: mlrt.ours_midpoints(clip, "fp32")),
        Runtime(f"ours (core.vfi.RIFE) default settings (precision auto: {auto})",
                lambda clip: mlrt.ours_midpoints(clip, "auto")),
        Runtime("vs-mlrt OV_CPU fp32", lambda clip: mlrt.ov_midpoints(clip, network, "fp32")),
        Runtime("vs-mlrt OV_CPU bf16", lambda clip: mlrt.ov_midpoints(clip, network, "bf16")),
    ]


def frames_needed(frame_count: int, rounds: int) -> int:
    """Video frames for the timed pairs and one warm-up pair, each pair with its real middle frame."""
    return 2 * (frame_count * rounds + 1) + 1


def max_frames(rounds: int) -> int:
    return max(f for f in range(1, SAMPLE_FRAMES) if frames_needed(f, rounds) <= SAMPLE_FRAMES)


def measure(frame_count: int, rounds: int) -> dict[str, object]:
    """Alternating rounds on the same frame pairs."""
    if frame_count > max_frames(rounds):
        raise ValueError(f"{SAMPLE} has pairs for at most {max_frames(rounds)} frames in each of {rounds} rounds")
    video = decode_rgb(fetch_sample(SAMPLE), frames_needed(frame_count, rounds))
    height, width = video.shape[1:3]
    kept = np.ascontiguousarray(video[0::2])  # frame-drop protocol: the odd frames are the truth
    cases = runtimes(mlrt.cached_onnx(*mlrt.padded_size(width, height)))
    # every runtime reads its own copy of the source, so none gets frames another one already pulled through
    outputs = [case.build(clip_from_frames(kept)) for case in cases]
    warm_up = frame_count * rounds  # a pair outside the timed ones: weights, compiled kernels, allocators
    for out in outputs:
        out.get_frame(warm_up)
    for round_index in range(rounds):
        reference: dict[int, np.ndarray] = {}
        for case, out in zip(cases, outputs, strict=True):
            for k in range(round_index * frame_count, (round_index + 1) * frame_count):
                case.seconds.append(harness.seconds(functools.partial(out.get_frame, k)))
                image = mlrt.rgb_of(out.get_frame(k))
                reference.setdefault(k, image)  # the first case is ours fp32
                case.psnr_vs_ours.append(psnr(image, reference[k]))
                case.psnr_vs_real.append(psnr(image, video[2 * k + 1]))
            print(f"round {round_index + 1}/{rounds}: {case.name}: {statistics.median(case.seconds[-frame_count:]):.3f}"
                  " s/frame", flush=True)
    ov_bf16 = statistics.median(cases[-1].seconds)
    rows: list[dict[str, Any]] = [{"runtime": case.name, "seconds": statistics.median(case.seconds),
             "vs_ov_bf16": statistics.median(case.seconds) / ov_bf16,
             "psnr_vs_ours": None if case is cases[0] else {"mean_db": float(np.mean(case.psnr_vs_ours)),
                                                            "worst_db": min(case.psnr_vs_ours)},
             "frame_drop_db": float(np.mean(case.psnr_vs_real))} for case in cases]
    return {"sample": SAMPLE, "width": width, "height": height, "frames": frame_count, "rounds": rounds,
            "versions": mlrt.ov_version(), "mlrt_multiple": mlrt.MLRT_MULTIPLE,
            "ours_padding": RIFE40().alignment(1.0), "rows": rows,
            "default_vs_ov_bf16": rows[1]["vs_ov_bf16"],
            "default_vs_fp32_db": rows[1]["frame_drop_db"] - rows[0]["frame_drop_db"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=5, help="interpolated frames timed per runtime and round")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="alternating rounds")
    args = parser.parse_args(argv)
    reason = mlrt.peer_unavailable_reason()
    if reason is not None:
        print(f"mlrt_peer: skipped: {reason}", file=sys.stderr)
        return 1
    return render.publish({"mlrt_peer": measure(args.frames, args.rounds)},
                          f"python -m benchmarks.mlrt_peer --frames {args.frames} --rounds {args.rounds}")


if __name__ == "__main__":
    sys.exit(main())
