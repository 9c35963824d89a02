"""Speed, memory and quality of both filters; writes docs/BENCHMARKS.md.

Run through `python3 build.py bench` (or with the project's .venv python).
- RIFE 4.0 against the published vsrife 2.0.0 inference code: both sides get the same real frames (bikes.mp4 at
  640x272, bigbuckbunny.mp4 at 1280x720) on the CPU in fp32. Ours is timed end to end through VapourSynth (frame
  copies, padding and all); the reference on tensors with the padding its plugin uses, so overhead counts against us.
- RRIN through core.vfi.RRIN at the same sizes in fp32 and bf16, and its peak memory (one fresh process per case,
  tests/memory_probe.py) at 1280x720 untiled and 3840x2160 with tile=512. Until our weights ship, RRIN runs seeded
  random weights: the cost of a pass does not depend on the weights' values.
- Frame-drop quality on frames 0-39 of bikes.mp4 for every model, with the neighbour average as the floor.
- The CPU peer (benchmarks/mlrt_peer.py): vs-mlrt's OpenVINO plugin on the same weights and frames, fp32 and bf16,
  alternating with ours; skipped with the install command when the `bench` extra is missing.
- What each CPU lever buys (benchmarks/cpu_levers.py): precision, memory format and native glue, one by one.
- Memory over 2000 output frames at 1280x720 with default settings through vspipe (benchmarks/soak.py); the bench
  exits 1 when it grows by 50 MB or more over the second half.
- With --scale-rule, the frame-drop study behind `scale=0` (benchmarks/scale_rule.py, about 17 minutes on 2 cores);
  without it, its section keeps its latest run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import tempfile
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import vapoursynth as vs

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from conftest import clip_from_frames, decode_rgb, frame_drop_psnr, psnr, save_rrin_state  # noqa: E402
from reference import load_reference  # noqa: E402
import cli_overhead  # noqa: E402
import cpu_levers  # noqa: E402
import mlrt_peer  # noqa: E402
import precision_cpu  # noqa: E402
import report  # noqa: E402
import scale_rule  # noqa: E402
import soak  # noqa: E402
from vsrife import registry  # noqa: E402
from vsrife.engine import scene_change_metric  # noqa: E402
from sample_media import fetch_sample  # noqa: E402

CASES = (("bikes.mp4", 640, 272), ("bigbuckbunny.mp4", 1280, 720))
ROUNDS = 2  # ours and the reference alternate, so load from elsewhere on the machine hits both alike
REFERENCE_PAD = 128  # the published 2.0.0 plugin pads both sides to multiples of 128
# (model, extra filter arguments) for the quality table; ensembles where the model has an optional one
QUALITY_RUNS: tuple[tuple[str, dict[str, int]], ...] = (
    ("4.0", {}), ("4.0", {"ensemble": 1}), ("3.1", {}), ("3.5", {}), ("3.8", {}), ("3.8", {"ensemble": 1}),
)


RRIN_PRECISIONS = ("fp32", "bf16")
RRIN_MEMORY_CASES = ((1280, 720, 0), (3840, 2160, 512))  # (width, height, tile)
MEMORY_PROBE = ROOT / "tests" / "memory_probe.py"
# memory over a long run at the peer's frame size, default settings (benchmarks/soak.py)
LONG_RUN_FRAMES = 2000
LONG_RUN_SIZE = (1280, 720)
LONG_RUN_SECTION = "## Memory over 2000 frames at 1280x720"
LONG_RUN_CACHE_MB = 1024  # VapourSynth's frame cache, bounded (its default is half the RAM)


def time_ours(frames: np.ndarray, count: int, filter_name: str = "RIFE", **filter_args: object) -> list[float]:
    clip = clip_from_frames(frames)
    interpolate = getattr(vs.core.vfi, filter_name)
    out = interpolate(clip, multi=2, device="cpu", **{"model": "4.0", "precision": "fp32", **filter_args})
    out.get_frame(1)  # warm-up: weights, allocator, oneDNN primitives
    times = []
    for k in range(1, count + 1):
        started = time.perf_counter()
        out.get_frame(2 * k + 1)
        times.append(time.perf_counter() - started)
    return times


def time_reference(frames: np.ndarray, count: int, infer: Callable[..., torch.Tensor]) -> list[float]:
    height, width = frames.shape[1:3]
    pad = (0, -width % REFERENCE_PAD, 0, -height % REFERENCE_PAD)

    def one(k: int) -> None:
        img0 = F.pad(torch.from_numpy(frames[k]).permute(2, 0, 1)[None].contiguous(), pad)
        img1 = F.pad(torch.from_numpy(frames[k + 1]).permute(2, 0, 1)[None].contiguous(), pad)
        infer(img0, img1, 0.5, 1.0)[:, :, :height, :width].numpy()

    with torch.inference_mode():
        one(0)
        times = []
        for k in range(1, count + 1):
            started = time.perf_counter()
            one(k)
            times.append(time.perf_counter() - started)
    return times


SCENE_THRESHOLD = 0.12  # the plugin's default sc_threshold


def scene_metric_rows(path: Path) -> list[str]:
    """The built-in cut metric on every neighbouring pair of a clip: the largest pair under the default threshold and
    every pair over it."""
    frames = torch.from_numpy(decode_rgb(path, 250)).permute(0, 3, 1, 2)
    values = [scene_change_metric(frames[i : i + 1], frames[i + 1 : i + 2]) for i in range(len(frames) - 1)]
    below = max(range(len(values)), key=lambda i: values[i] if values[i] <= SCENE_THRESHOLD else -1.0)
    rows = [f"| {below} -> {below + 1} | {values[below]:.3f} | largest below the threshold |"]
    rows += [f"| {i} -> {i + 1} | {v:.3f} | cut |" for i, v in enumerate(values) if v > SCENE_THRESHOLD]
    return rows


def rrin_filter_args(weights: Path | None) -> dict[str, str]:
    """model="rrin" with the shipped weights, or with `weights` (trained or seeded random) as model_path."""
    return {"model": "rrin"} if weights is None else {"model": "rrin", "model_path": str(weights)}


def rrin_speed_rows(frame_count: int, weights: Path | None, label: str) -> list[str]:
    rows = []
    for name, width, height in CASES:
        frames = decode_rgb(fetch_sample(name), frame_count + 3, width=width, height=height)
        for precision in RRIN_PRECISIONS:
            seconds = statistics.median(time_ours(frames, frame_count, "RRIN", precision=precision,
                                                  **rrin_filter_args(weights)))
            rows.append(f"| RRIN ({label}) | {width}x{height} | CPU {precision} | {seconds:.3f} |")
            print(rows[-1], flush=True)
    return rows


def rrin_memory_rows(weights: Path | None) -> list[str]:
    """Peak resident memory of one RRIN pass in a fresh process (CPU fp32), untiled and tiled."""
    rows = []
    for width, height, tile in RRIN_MEMORY_CASES:
        command = [sys.executable, str(MEMORY_PROBE), "--model", "rrin", "--width", str(width), "--height",
                   str(height), "--tile", str(tile), "--threads", str(torch.get_num_threads())]
        if weights is not None:
            command += ["--weights", str(weights)]
        result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        mode = f"tile={tile} ({result['tiles']} tiles)" if tile else "untiled"
        rows.append(f"| {width}x{height} | {mode} | {result['peak_rss'] / 2**30:.2f} GiB | "
                    f"{(result['peak_rss'] - result['rss_before']) / 2**30:.2f} GiB | {result['seconds']:.0f} s |")
        print(rows[-1], flush=True)
    return rows


def neighbour_average_psnr(frames: np.ndarray) -> float:
    """The frame-drop protocol with the mean of the two kept neighbours as the 'interpolation'."""
    return float(np.mean([psnr((frames[2 * k] + frames[2 * k + 2]) / 2, frames[2 * k + 1])
                          for k in range((len(frames) - 1) // 2)]))


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=10, help="interpolated frames timed per case and round")
    parser.add_argument("--rrin-frames", type=int, default=3, help="RRIN frames timed per case")
    parser.add_argument("--rrin-weights", type=Path, default=None,
                        help="RRIN weights to measure instead of the shipped ones (e.g. a training run's)")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    parser.add_argument("--scale-rule", action="store_true",
                        help="also rerun the scale=0 study (benchmarks/scale_rule.py; quality only, about 17 min)")
    args = parser.parse_args()
    scratch = tempfile.TemporaryDirectory()
    rrin_weights: Path | None = args.rrin_weights
    if rrin_weights is not None:
        rrin_label = f"weights {rrin_weights.name}"
    elif registry.get_model("rrin").released:
        rrin_label = "shipped weights"
    else:
        rrin_weights = save_rrin_state(Path(scratch.name) / "rrin_random.pth")
        rrin_label = "seeded random weights, same cost"

    infer = load_reference("4.0", device="cpu")
    rows = []
    for name, width, height in CASES:
        frames = decode_rgb(fetch_sample(name), args.frames + 3, width=width, height=height)
        ours_times: list[float] = []
        reference_times: list[float] = []
        for _ in range(ROUNDS):
            ours_times += time_ours(frames, args.frames)
            reference_times += time_reference(frames, args.frames, infer)
        ours, reference = statistics.median(ours_times), statistics.median(reference_times)
        rows.append(f"| RIFE 4.0 | {width}x{height} | CPU fp32 | {ours:.3f} | {reference:.3f} | {reference / ours:.2f}x |")
        print(rows[-1], flush=True)

    rrin_rows = rrin_speed_rows(args.rrin_frames, rrin_weights, rrin_label)
    memory_rows = rrin_memory_rows(rrin_weights)

    bikes40 = decode_rgb(fetch_sample("bikes.mp4"), 40)
    quality = [f"| neighbour average | {neighbour_average_psnr(bikes40):.2f} dB | - |"]
    for name, extra in QUALITY_RUNS:
        score = frame_drop_psnr(bikes40, model=name, **extra)
        published = f"{registry.get_model(name).reference_psnr_db:.2f} dB" if not extra else "-"
        label = f"RIFE {name}" + "".join(f", {key}={value}" for key, value in extra.items())
        quality.append(f"| {label} | {score:.2f} dB | {published} |")
        print(quality[-1], flush=True)

    if "random" not in rrin_label:
        score = frame_drop_psnr(bikes40, "RRIN", **rrin_filter_args(args.rrin_weights))
        quality.append(f"| RRIN ({rrin_label}) | {score:.2f} dB | - |")
        print(quality[-1], flush=True)

    scene_rows = scene_metric_rows(fetch_sample("bikes.mp4"))
    print(*scene_rows, sep="\n", flush=True)

    cli_section = cli_overhead.section(*cli_overhead.measure(rounds=5))
    precision_section = precision_cpu.measure()

    machine = f"{cpu_name()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, VapourSynth R{vs.core.core_version.release_major}"
    table = "\n".join([
        "| model | frame size | device | ours (s/frame) | published 2.0.0 (s/frame) | speed-up |",
        "| --- | --- | --- | --- | --- | --- |",
        *rows,
    ])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    previous = args.output.read_text() if args.output.exists() else ""
    written = (
        "# Benchmarks\n\n"
        f"Latest run: {datetime.date.today().isoformat()} on {machine}.\n\n"
        "Command: `python3 build.py bench` (runs `benchmarks/bench.py`). Median seconds per interpolated frame "
        f"over {ROUNDS} alternating rounds of {args.frames} frames each (each round after one warm-up frame). "
        "Ours runs end to end through `core.vfi.RIFE`; the "
        "published code runs on tensors padded the way its plugin pads them (multiples of 128).\n\n"
        f"{table}\n\n"
        "## RRIN\n\n"
        f"Median seconds per interpolated frame through `core.vfi.RRIN` over {args.rrin_frames} frames after one "
        "warm-up frame, same frames as above. bf16 runs the convolutions in bfloat16; the warp coordinates stay "
        "fp32.\n\n"
        "| model | frame size | device | s/frame |\n| --- | --- | --- | --- |\n" + "\n".join(rrin_rows) + "\n\n"
        "Peak resident memory of the whole process (torch, weights, frames included) for one RRIN pass on the CPU "
        "in fp32, each case in a fresh process (`tests/memory_probe.py`; tiles overlap by at least 64 px), and the "
        "growth during the pass. `benchmarks/memory_rrin.py` fits the per-pixel model that `tile=0` uses.\n\n"
        "| frame size | tiling | peak RSS | growth during the pass | time |\n| --- | --- | --- | --- | --- |\n"
        + "\n".join(memory_rows) + "\n\n"
        "The per-pixel model that `tile=0` uses comes from `benchmarks/memory_rrin.py` (growth of one untiled "
        "pass in a fresh process at several sizes, least-squares line; CPU fp32; measured 2026-11-23 on this "
        "machine): RRIN 990 bytes per padded pixel + 97 MiB (256x256 to 1280x720), RIFE 4.0 246 bytes per padded "
        "pixel + 25 MiB (640x272 to 2560x1440).\n\n"
        "## Quality\n\n"
        "Frame-drop protocol on frames 0-39 of bikes.mp4 (keep the even frames, interpolate the odd ones with "
        "`multi=2`, mean PSNR against the real odd frames, full-range RGB, CPU fp32), same run. The published "
        "column is the published inference code's score from shared/DESIGN.md. The neighbour average is the mean "
        "of the two kept frames: the floor any interpolation must beat.\n\n"
        "| model | ours | published code |\n| --- | --- | --- |\n" + "\n".join(quality) + "\n\n"
        "## Scene-change metric\n\n"
        "The `sc=1` detector's metric (mean absolute RGB difference at quarter resolution) on all 249 neighbouring "
        f"pairs of bikes.mp4, against the default `sc_threshold` of {SCENE_THRESHOLD}.\n\n"
        "| frames | metric | |\n| --- | --- | --- |\n" + "\n".join(scene_rows) + "\n\n"
        + cli_section + "\n" + precision_section
    )
    # Sections other commands write (build.py soak, model_zoo.py, cluster.py, weights_hash.py; the peer's and
    # scale_rule.py's when this run skips them) keep their latest run.
    kept = [report.section_of(previous, heading) for heading in report.headings(previous)
            if heading not in report.headings(written)]
    args.output.write_text(written + "".join("\n" + section for section in kept if section is not None))
    print(f"wrote {args.output}")
    peer_missing = mlrt_peer.peer_unavailable_reason()
    if peer_missing is None:
        peer_frames = min(args.frames, mlrt_peer.max_frames(mlrt_peer.ROUNDS))  # its 132-frame clip caps the pairs
        report.update_section(mlrt_peer.SECTION, mlrt_peer.measure(peer_frames, mlrt_peer.ROUNDS), args.output)
    else:
        print(f"skipped the vs-mlrt OpenVINO peer ({mlrt_peer.SECTION[3:]}): {peer_missing}", flush=True)
    report.update_section(cpu_levers.SECTION, cpu_levers.measure(rounds=3, compile_too=False), args.output)
    memory_section, flat = soak.measure(LONG_RUN_FRAMES, *LONG_RUN_SIZE, section=LONG_RUN_SECTION,
                                        cache_mb=LONG_RUN_CACHE_MB)
    report.update_section(LONG_RUN_SECTION, memory_section, args.output)
    if args.scale_rule:
        study = scale_rule.measure()
        report.update_section(scale_rule.SECTION, scale_rule.section(study, "python3 build.py bench --scale-rule"),
                              args.output)
    else:
        print(f"kept the latest {scale_rule.SECTION[3:]!r} study; `python3 build.py bench --scale-rule` reruns it",
              flush=True)
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
