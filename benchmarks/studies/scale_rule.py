"""Which flow resolution (`scale`) RIFE 4.0 should use for a frame size: the measurement behind `scale=0` (auto).

Run: `.venv/bin/python benchmarks/scale_rule.py` (also part of `python3 build.py bench`). Frame-drop protocol through
`core.vfi.RIFE` (model 4.0, `multi=2`, CPU fp32): keep the frames before and after, interpolate the middle one and
score it against the real one (PSNR, full-range RGB), for every applicable scale on
- bikes.mp4 frames 40-249 resized with ffmpeg to several sizes (frames 0-39 are the public quality gate and never
  used here): evenly spread triplets of consecutive frames that straddle no scene cut;
- synthetic motion of known size: a natural image from the scikit-image wheel translating by (d, d/2) pixels per
  frame behind a patch of another one moving by (-d/2, d), whole pixels, so the middle frame is exact; d is a fixed
  fraction of the frame width, as the same scene filmed at a higher resolution moves by more pixels;
- and, reported only (the rule is never chosen on it), held-out evaluation clips: bigbuckbunny.mp4.
The "auto" column is the scale vsrife.engine.auto_scale picks for that size. Replaces the "Scale chosen by the frame
size" section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import vapoursynth as vs

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from conftest import clip_from_frames, ffmpeg_executable, frame_array, psnr  # noqa: E402
from report import update_section  # noqa: E402
from sample_media import fetch_sample  # noqa: E402

from vsrife import engine, weights  # noqa: E402
from vsrife.engine import auto_scale, scene_change_metric  # noqa: E402
from vsrife.training.data import SKIMAGE_IMAGES  # noqa: E402
from vsrife.training.data import decode_rgb as decode_image  # noqa: E402

SECTION = "## Scale chosen by the frame size"
COMMAND = ".venv/bin/python benchmarks/scale_rule.py"
SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)
GATE_FRAMES = 40  # bikes.mp4 frames 0-39 are the public quality gate: never used to choose the rule
CUT_THRESHOLD = 0.12  # the plugin's default sc_threshold: a triplet with a pair above it straddles a cut

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
    cut = [scene_change_metric(frames[i : i + 1] / 255.0, frames[i + 1 : i + 2] / 255.0) > CUT_THRESHOLD
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


@dataclass(frozen=True)
class Study:
    """All results of one run and where it ran."""

    date: str
    machine: str
    minutes: float
    results: list[Result]

    def group(self, name: str) -> list[Result]:
        return [r for r in self.results if r.group == name]

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "results": [{**asdict(r), "scores": {str(k): v for k, v in
                                                                                 r.scores.items()}}
                                                       for r in self.results]}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Study:
        data = json.loads(text)
        results = [Result(**{**r, "scores": {float(k): v for k, v in r["scores"].items()}}) for r in data["results"]]
        return cls(data["date"], data["machine"], data["minutes"], results)


def table(results: Sequence[Result], what: str) -> list[str]:
    """Markdown rows: one per case, a column per scale (best in bold), auto's pick and its margin over scale 1."""
    header = [f"| {what} | triplets | " + " | ".join(f"{s:g}" for s in SCALES) + " | auto | auto - 1 |",
              "| --- | --- | " + " | ".join("---" for _ in SCALES) + " | --- | --- |"]
    rows = []
    for result in results:
        cells = []
        for scale in SCALES:
            if scale not in result.scores:
                cells.append("-")
            elif scale == result.best:
                cells.append(f"**{result.scores[scale]:.2f}**")
            else:
                cells.append(f"{result.scores[scale]:.2f}")
        margin = result.scores[result.auto] - result.scores[1.0]
        rows.append(f"| {result.label} | {result.triplets} | " + " | ".join(cells)
                    + f" | {result.auto:g} | {margin:+.2f} |")
    return header + rows


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def rule_text() -> str:
    rows = [f"up to {limit:,} pixels: {scale:g}" for limit, scale in engine.AUTO_SCALE_RULE]
    return "; ".join([*rows, f"larger: {engine.AUTO_SCALE_LARGEST:g}"])


def measure(*, held_out: bool = True) -> Study:
    """Run the study: every case at every applicable scale."""
    started = time.perf_counter()
    bikes = fetch_sample("bikes.mp4")
    starts = uncut_triplets(bikes, GATE_FRAMES, clip_length(bikes) - 1)
    results = [measure_case(video_case("bikes", bikes, spread(starts, count), width, height))
               for width, height, count in BIKES_SIZES]
    results += [measure_case(case) for case in synthetic_cases(SYNTHETIC_SIZES, SYNTHETIC_MOTIONS)]
    if held_out:
        for name, width, height, count in HELD_OUT:
            path = fetch_sample(name)
            held_starts = uncut_triplets(path, 0, clip_length(path) - 1)
            results.append(measure_case(video_case("held-out", path, spread(held_starts, count), width, height)))
    machine = f"{cpu_name()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    return Study(datetime.date.today().isoformat(), machine, (time.perf_counter() - started) / 60, results)


def margin(result: Result) -> float:
    """How much better (dB) the automatic scale does than scale 1 on this case."""
    return result.scores[result.auto] - result.scores[1.0]


def worst_case(results: Sequence[Result]) -> str:
    worst = min(results, key=margin)
    return f"{margin(worst):+.2f} dB ({worst.label})"


def section(study: Study, command: str) -> str:
    """The "Scale chosen by the frame size" section of docs/BENCHMARKS.md for a study and the current rule."""
    chosen_on = study.group("bikes") + study.group("synthetic")
    held = study.group("held-out")
    measured = chosen_on + held
    bar = ("auto is at least as good as scale 1 on every row measured, so it qualifies as the default"
           if min(map(margin, measured)) >= 0 else
           "auto is worse than scale 1 on some measured row, so it does not qualify as the default (which stays "
           "`scale=1`)")
    lines = [
        SECTION, "",
        "Which `scale` (flow resolution) suits RIFE 4.0 at which frame size: frame-drop PSNR (dB) per scale through "
        "`core.vfi.RIFE` (`multi=2`, model 4.0, CPU fp32). Command: "
        f"`{command}`; measured {study.date} on {study.machine} ({study.minutes:.0f} min). A triplet is three "
        "consecutive frames: the outer two are kept, the middle one is synthesized at t = 0.5 and scored against "
        "the real one (mean over the triplets, full-range RGB). Best scale per row in bold; \"auto\" is the scale "
        "`scale=0` picks for that size (`vsrife.engine.auto_scale`) and \"auto - 1\" its margin over scale 1 in "
        "dB. Scale 4 is measured on frames up to 640x360 only, 2 up to 1080p, 0.25 from 960x400.", "",
        "**bikes.mp4 frames 40-249** (frames 0-39 are the public quality gate and were not used), resized by "
        "ffmpeg (bicubic) from its native 640x272; triplets spread evenly over those frames, none across a scene "
        "cut. Frames larger than 640x272 are upscaled, so they hold no more detail than the original, but their "
        "motion in pixels grows with the size, which is what the scale is for.", "",
        *table(study.group("bikes"), "size"), "",
        "**Synthetic motion of known size**: a scikit-image sample image moving by (d, d/2) pixels per frame "
        "behind an elliptic patch of another one moving by (-d/2, d), in whole pixels (each frame an exact crop, "
        "the middle frame exact); d is a fixed fraction of the width, like one scene filmed at several "
        "resolutions. One triplet per scene: "
        f"{'; '.join(f'{bg} behind {fg}' for bg, fg in SYNTHETIC_SCENES)} (the first ones on the larger sizes).",
        "",
        *table(study.group("synthetic"), "size, motion"), "",
        f"**Rule** (`vsrife.engine.AUTO_SCALE_RULE`, by the frame's pixel count), chosen on the two tables above: "
        f"{rule_text()}. Worst margin over scale 1 there: {worst_case(chosen_on)}.",
    ]
    if held:
        lines += ["", "**Held-out evaluation, reported only** (never used to choose the rule): bigbuckbunny.mp4 "
                  "(1280x720, 132 frames) resized, triplets spread over the clip, none across a scene cut. Worst "
                  f"margin of auto over scale 1: {worst_case(held)}.", "",
                  *table(held, "clip")]
    lines += ["", f"Verdict: {bar}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-held-out", action="store_true", help="skip the held-out evaluation clip")
    parser.add_argument("--save", type=Path, help="also write the raw scores to this JSON file")
    parser.add_argument("--from-results", type=Path,
                        help="no measuring: the section from a JSON file that --save wrote (e.g. after a rule change)")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    parser.add_argument("--print-only", action="store_true", help="print the section, leave BENCHMARKS.md alone")
    args = parser.parse_args()
    study = Study.from_json(args.from_results.read_text()) if args.from_results else measure(
        held_out=not args.no_held_out)
    if args.save:
        args.save.write_text(study.to_json())
    text = section(study, COMMAND)
    print(text)
    if not args.print_only:
        update_section(SECTION, text, args.output)


if __name__ == "__main__":
    main()
