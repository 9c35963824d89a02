"""Which flow resolution (`scale`) RIFE 4.0 should use for a frame size: the measurement behind `scale=0` (auto).

A study, not a benchmark: run it when the rule is in question (`python -m benchmarks.studies.scale_rule`, or
`python3 build.py bench --scale-rule`; about 17 minutes on 2 cores). Frame-drop protocol through
`core.vfi.RIFE` (model 4.0, `multi=2`, CPU fp32): keep the frames before and after, interpolate the middle one and
score it against the real one (PSNR, full-range RGB), for every applicable scale on
- bikes.mp4 frames 40-249 resized with ffmpeg to several sizes (frames 0-39 are the public quality gate and never
  used here): evenly spread triplets of consecutive frames that straddle no scene cut;
- synthetic motion of known size: a natural image from the scikit-image wheel translating by (d, d/2) pixels per
  frame behind a patch of another one moving by (-d/2, d), whole pixels, so the middle frame is exact; d is a fixed
  fraction of the frame width, as the same scene filmed at a higher resolution moves by more pixels;
- and, reported only (the rule is never chosen on it), held-out evaluation clips: bigbuckbunny.mp4.
The "auto" column is the scale vsrife.scale.auto_scale picks for that size. Writes benchmarks/results/scale_rule.json
(the "Scale chosen by the frame size" section of docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import vapoursynth as vs

from testkit.frames import clip_from_frames, ffmpeg_executable, frame_array, psnr
from testkit.samples import fetch_sample
from vsrife import weights
from vsrife.parameters import SC_THRESHOLD
from vsrife.scale import AUTO_SCALE_LARGEST, AUTO_SCALE_RULE, SCALES, auto_scale
from vsrife.scene import scene_change_metric
from vsrife.training.data import SKIMAGE_IMAGES
from vsrife.training.data import decode_rgb as decode_image

from .. import render

GATE_FRAMES = 40  # bikes.mp4 frames 0-39 are the public quality gate: never used to choose the rule

# (width, height, triplets): bikes.mp4 (640x272) resized; fewer triplets where a pass costs more
BIKES_SIZES = ((176, 144, 12), (320, 136, 12), (480, 204, 12), (640, 272, 12), (960, 408, 8), (1280, 544, 8),
               (1920, 816, 6), (2560, 1088, 4), (3840, 1632, 3))
# (width, height, scenes) of the synthetic motion
SYNTHETIC_SIZES = ((256, 144, 3), (320, 180, 3), (480, 270, 3), (640, 360, 3), (1280, 720, 3), (1920, 1080, 2),
                   (2560, 1440, 2), (3840, 2160, 1))
# background motion per frame as a fraction of the frame width
SYNTHETIC_MOTIONS = (0.01, 0.025, 0.05)
# (background, foreground) images of the synthetic scenes, from the scikit-image wheel
SYNTHETIC_SCENES = (("motorcycle_left.png", "chelsea.png"), ("coffee.png", "astronaut.png"),
                    ("rocket.jpg", "motorcycle_right.png"))
# (clip, width, height, triplets): held-out evaluation, reported beside the study, never used to choose
HELD_OUT = (("bigbuckbunny.mp4", 256, 144, 8), ("bigbuckbunny.mp4", 320, 180, 8), ("bigbuckbunny.mp4", 640, 360, 8),
            ("bigbuckbunny.mp4", 1280, 720, 6), ("bigbuckbunny.mp4", 3840, 2160, 3))


@dataclass
class Case:
    """Triplets of one clip at one size: (n, 3, height, width, 3) float32, the middle frame the one to recreate."""

    group: str  # "bikes", "synthetic" or "held-out"
    label: str
    triplets: np.ndarray

    @property
    def width(self) -> int:
        return int(self.triplets.shape[3])

    @property
    def height(self) -> int:
        return int(self.triplets.shape[2])


def applicable_scales(width: int, height: int) -> tuple[float, ...]:
    """The scales worth measuring at this size: 4 only on small frames, 2 up to 1080p, 0.25 only on large ones."""
    pixels = width * height
    chosen = [s for s in SCALES if (s != 4.0 or pixels <= 640 * 360) and (s != 2.0 or pixels <= 1920 * 1088)
              and (s != 0.25 or pixels >= 960 * 400)]
    if auto_scale(width, height) not in chosen:
        chosen.append(auto_scale(width, height))
    return tuple(sorted(chosen))


def decode_frames(path: Path, first: int, count: int, width: int, height: int) -> np.ndarray:
    """Frames first .. first+count-1 of a video resized by ffmpeg (its default bicubic), uint8 RGB (n, h, w, 3)."""
    raw = subprocess.run(
        [ffmpeg_executable(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-vf",
         f"trim=start_frame={first}:end_frame={first + count},scale={width}:{height}", "-fps_mode", "passthrough",
         "-pix_fmt", "rgb24", "-f", "rawvideo", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(count, height, width, 3)


def clip_length(path: Path) -> int:
    return int(vs.core.bs.VideoSource(str(path)).num_frames)


def uncut_triplets(path: Path, first: int, last: int) -> list[int]:
    """First frames i (first <= i, i + 2 <= last) of triplets whose two neighbouring pairs are no scene cut."""
    native = vs.core.bs.VideoSource(str(path))
    frames = torch.from_numpy(decode_frames(path, first, last - first + 1, native.width, native.height))
    frames = frames.permute(0, 3, 1, 2)  # uint8, converted a pair at a time to keep a long clip small
    # a triplet with a pair above the filter's default sc_threshold straddles a cut
    cut = [scene_change_metric(frames[i : i + 1] / 255.0, frames[i + 1 : i + 2] / 255.0) > SC_THRESHOLD
           for i in range(len(frames) - 1)]
    return [first + i for i in range(0, len(frames) - 2, 2) if not cut[i] and not cut[i + 1]]


def spread(items: Sequence[int], count: int) -> list[int]:
    """`count` items spread evenly over `items` (all of them when there are fewer)."""
    if count >= len(items):
        return list(items)
    return [items[round(k)] for k in np.linspace(0, len(items) - 1, count)]


def video_case(group: str, path: Path, starts: Sequence[int], width: int, height: int) -> Case:
    triplets = np.stack([decode_frames(path, start, 3, width, height) for start in starts]).astype(np.float32) / 255
    return Case(group, f"{path.name} {width}x{height}", triplets)


def skimage_images() -> dict[str, torch.Tensor]:
    """The scikit-image wheel's sample images used here as 3 x H x W float32 in [0, 1] (read out of the wheel)."""
    wanted = {name for pair in SYNTHETIC_SCENES for name in pair}
    images = {}
    for image in SKIMAGE_IMAGES:
        if image.filename in wanted:
            target = weights.cache_dir() / "_training" / image.filename
            if not weights.is_verified(target, image):
                weights.fetch(image, target)
            images[image.filename] = decode_image(target, 0, 1)[0].float() / 255.0
    return images


def cover(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """`image` resized (bicubic, antialiased, aspect kept) to cover height x width, then centre-cropped to it."""
    _, ih, iw = image.shape
    factor = max(height / ih, width / iw)
    size = (max(height, round(ih * factor)), max(width, round(iw * factor)))
    resized = F.interpolate(image[None], size=size, mode="bicubic", antialias=True, align_corners=False)[0]
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    return resized[:, top : top + height, left : left + width].clamp(0, 1)


def synthetic_triplet(background: torch.Tensor, foreground: torch.Tensor, width: int, height: int,
                      d: int) -> np.ndarray:
    """Frames 0, 1, 2 (3, height, width, 3): the background moves (d, d//2) px per frame, an elliptic patch of the
    foreground (-(d//2), d); whole pixels, so every frame is an exact crop (no resampling between frames)."""
    bx, by = d, d // 2
    fx, fy = -(d // 2), d
    texture = cover(background, height + 2 * by, width + 2 * bx)
    ph, pw = max(8, round(0.45 * height)), max(8, round(0.6 * height))
    patch = cover(foreground, ph, pw)
    y, x = torch.meshgrid(torch.linspace(-1, 1, ph), torch.linspace(-1, 1, pw), indexing="ij")
    # a soft one-pixel edge, as a real object's border is antialiased
    alpha = ((1 - (x * x + y * y).sqrt()) * min(ph, pw) / 2).clamp(0, 1)[None]
    frames = []
    for k in range(3):
        frame = texture[:, 2 * by - k * by : 2 * by - k * by + height, 2 * bx - k * bx : 2 * bx - k * bx + width]
        frame = frame.clone()
        top = (height - ph) // 2 - fy + k * fy
        left = (width - pw) // 2 - fx + k * fx
        region = frame[:, top : top + ph, left : left + pw]
        region.mul_(1 - alpha).add_(patch * alpha)
        frames.append(frame.permute(1, 2, 0))
    return torch.stack(frames).numpy().astype(np.float32)


def synthetic_cases(sizes: Iterable[tuple[int, int, int]], motions: Iterable[float]) -> list[Case]:
    images = skimage_images()
    cases = []
    for width, height, scenes in sizes:
        for fraction in motions:
            d = max(1, round(fraction * width))
            triplets = np.stack([synthetic_triplet(images[bg], images[fg], width, height, d)
                                 for bg, fg in SYNTHETIC_SCENES[:scenes]])
            cases.append(Case("synthetic", f"{width}x{height}, d = {d} px/frame ({fraction:.1%} of the width)",
                              triplets))
    return cases


def frame_drop_psnr(triplets: np.ndarray, scale: float) -> float:
    """Mean PSNR of the middle frames synthesized at t = 0.5 from the outer ones, with RIFE 4.0 at `scale`."""
    kept = np.ascontiguousarray(triplets[:, [0, 2]].reshape(-1, *triplets.shape[2:]))
    doubled = vs.core.vfi.RIFE(clip_from_frames(kept), multi=2, model="4.0", scale=scale, device="cpu",
                               precision="fp32")
    # output 4j + 1 lies between kept frames 2j and 2j + 1: the outer frames of triplet j
    return float(np.mean([psnr(frame_array(doubled.get_frame(4 * j + 1)), triplet[1].transpose(2, 0, 1))
                          for j, triplet in enumerate(triplets)]))


@dataclass(frozen=True)
class Result:
    """The mean PSNR per scale of one case; what the table and the JSON record hold."""

    group: str
    label: str
    width: int
    height: int
    triplets: int
    scores: dict[float, float]  # scale -> mean PSNR (dB)

    @property
    def auto(self) -> float:
        return auto_scale(self.width, self.height)

    @property
    def best(self) -> float:
        return max(self.scores, key=lambda s: self.scores[s])


def measure_case(case: Case) -> Result:
    started = time.perf_counter()
    scores = {scale: frame_drop_psnr(case.triplets, scale) for scale in applicable_scales(case.width, case.height)}
    print(f"{case.group}: {case.label}: " + ", ".join(f"{s:g}: {v:.2f}" for s, v in scores.items())
          + f" ({time.perf_counter() - started:.0f} s)", flush=True)
    return Result(case.group, case.label, case.width, case.height, len(case.triplets), scores)


def rule_text() -> str:
    rows = [f"up to {limit:,} pixels: {scale:g}" for limit, scale in AUTO_SCALE_RULE]
    return "; ".join([*rows, f"larger: {AUTO_SCALE_LARGEST:g}"])


def measure(*, held_out: bool = True, sizes_limit: int | None = None) -> dict[str, object]:
    """Run the study: every case at every applicable scale (sizes_limit: only the first sizes of each list)."""
    started = time.perf_counter()
    bikes = fetch_sample("bikes.mp4")
    starts = uncut_triplets(bikes, GATE_FRAMES, clip_length(bikes) - 1)
    results = [measure_case(video_case("bikes", bikes, spread(starts, count), width, height))
               for width, height, count in BIKES_SIZES[:sizes_limit]]
    results += [measure_case(case) for case in synthetic_cases(SYNTHETIC_SIZES[:sizes_limit], SYNTHETIC_MOTIONS)]
    if held_out:
        for name, width, height, count in HELD_OUT[:sizes_limit]:
            path = fetch_sample(name)
            held_starts = uncut_triplets(path, 0, clip_length(path) - 1)
            results.append(measure_case(video_case("held-out", path, spread(held_starts, count), width, height)))
    rows = [{"group": r.group, "label": r.label, "width": r.width, "height": r.height, "triplets": r.triplets,
             "scores": {f"{scale:g}": value for scale, value in r.scores.items()}, "auto": r.auto,
             "margin": r.scores[r.auto] - r.scores[1.0]} for r in results]
    return {"minutes": (time.perf_counter() - started) / 60, "results": rows, "rule": rule_text(),
            "scenes": [list(scene) for scene in SYNTHETIC_SCENES]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-held-out", action="store_true", help="skip the held-out evaluation clip")
    parser.add_argument("--sizes", type=int, default=None, help="only the first N sizes of each list (a trial)")
    args = parser.parse_args(argv)
    data = measure(held_out=not args.no_held_out, sizes_limit=args.sizes)
    return render.publish({"scale_rule": data},
                          "python -m benchmarks.studies.scale_rule")


if __name__ == "__main__":
    sys.exit(main())
