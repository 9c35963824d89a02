"""How much core.vfi.RIFE's frames differ between instruction sets: what a cluster of mixed CPUs would join.

One CPU can only run its own instruction set and lower ones, so the sets are emulated by capping: oneDNN's
convolutions (ONEDNN_MAX_CPU_ISA), PyTorch's own vectorised kernels (ATEN_CPU_CAPABILITY) and the native glue
kernels (VSRIFE_KERNELS). Each setting renders the same frames in a process of its own: the midpoints of bikes.mp4
frame pairs (0, 2), (2, 4), ... at 640x272, with RIFE 4.0 (its real weights) and RIFE 4.25 (seeded random weights in
the published layout: no real file is reachable here, and random weights amplify rounding, so its numbers are an
upper end), in fp32 and in bf16 (the default on CPUs with bf16 arithmetic; precision="auto" is fp32 elsewhere).
Every setting is compared with the uncapped one: max abs difference and PSNR over all frames (RGB in [0, 1]).

    python -m benchmarks.isa_rounding [--pairs 10]

writes benchmarks/results/isa_rounding-<CPU kind>.json (one result per harness.CPU_KINDS), shown in docs/BENCHMARKS.md
("Rounding between instruction sets"); the README's cluster section sums it up.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from testkit.samples import fetch_sample

from . import harness, render
from .harness import ROOT

# name -> environment of the process that renders; "native" is the CPU's own best everywhere
SETTINGS: dict[str, dict[str, str]] = {
    "native": {},
    "oneDNN capped at AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},  # what an AVX-512 machine shares with an AVX2 one
    "all three at AVX2 (an AVX2 CPU)": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
                                        "VSRIFE_KERNELS": "avx2"},
    "oneDNN capped at SSE41": {"ONEDNN_MAX_CPU_ISA": "SSE41"},
    "ATen capped at default": {"ATEN_CPU_CAPABILITY": "default"},
    "native kernels generic": {"VSRIFE_KERNELS": "generic"},
    "all three capped": {"ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default", "VSRIFE_KERNELS": "generic"},
}
CAPS = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "VSRIFE_KERNELS")
CASES = [(model, precision) for model in ("4.0", "4.25") for precision in ("fp32", "bf16")]


def bikes_frames(count: int) -> np.ndarray:
    """The first `count` frames of bikes.mp4 as float32 RGB in [0, 1], shape (count, 272, 640, 3)."""
    import imageio_ffmpeg

    path = fetch_sample("bikes.mp4")
    raw = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", path,
                          "-frames:v", str(count), "-pix_fmt", "rgb24", "-f", "rawvideo", "-"],
                         check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(count, 272, 640, 3).astype(np.float32) / 255.0


def seeded_425_weights(path: Path) -> Path:
    """Seeded random RIFE 4.25 weights in the published file layout (as tests/test_rife4_parity.py makes them)."""
    import torch

    from testkit import reference

    torch.manual_seed(0)
    state = reference.published_rife4("4.25").net().state_dict()
    torch.save({"module." + key: value for key, value in state.items()}, path)
    return path


def render_cases(frames_path: Path, weights_425: Path, out: Path) -> None:
    """Worker: the midpoints of every case into `out` (an .npz), in this process's instruction-set setting."""
    import torch
    import vapoursynth as vs

    from vsrife import kernels

    frames = np.load(frames_path)
    count, height, width, _ = frames.shape
    blank = vs.core.std.BlankClip(format=vs.RGBS, width=width, height=height, length=count)

    def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        frame = f.copy()
        for plane in range(3):
            np.copyto(np.asarray(frame[plane]), frames[n, :, :, plane])
        return frame

    clip = blank.std.ModifyFrame(clips=blank, selector=fill)
    results: dict[str, np.ndarray] = {}
    for model, precision in CASES:
        extra = {"model_path": str(weights_425)} if model == "4.25" else {}
        doubled = vs.core.vfi.RIFE(clip, multi=2, model=model, device="cpu", precision=precision, **extra)
        results[f"{model} {precision}"] = np.stack([
            np.stack([np.asarray(doubled.get_frame(2 * k + 1)[p]) for p in range(3)]) for k in range(count - 1)])
    results["info"] = np.array([torch.backends.cpu.get_cpu_capability(), str(kernels.native_isa()),
                                str(torch.get_num_threads())])
    np.savez(out, allow_pickle=False, **results)


def compare(a: np.ndarray, b: np.ndarray) -> dict[str, float | None]:
    """Max abs difference and PSNR (None where the frames are identical)."""
    difference = a.astype(np.float64) - b.astype(np.float64)
    mse = float(np.mean(difference**2))
    return {"max_abs": float(np.abs(difference).max()), "psnr": None if mse == 0 else 10 * math.log10(1 / mse)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=10, help="frame pairs (midpoints) per case (default 10)")
    parser.add_argument("--worker", nargs=3, type=Path, metavar=("FRAMES", "WEIGHTS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        render_cases(*args.worker)
        return 0
    base = {key: value for key, value in os.environ.items() if key not in CAPS}
    with tempfile.TemporaryDirectory(prefix="isa-rounding-") as scratch:
        folder = Path(scratch)
        np.save(folder / "frames.npy", np.ascontiguousarray(bikes_frames(2 * args.pairs + 1)[0::2]))
        weights_425 = seeded_425_weights(folder / "flownet_v4.25_seeded.pkl")
        rendered: dict[str, dict[str, np.ndarray]] = {}
        for name, env in SETTINGS.items():
            out = folder / f"{len(rendered)}.npz"
            print(f"rendering: {name}", file=sys.stderr, flush=True)
            subprocess.run([sys.executable, "-m", "benchmarks.isa_rounding", "--worker", str(folder / "frames.npy"),
                            str(weights_425), str(out)], check=True, env={**base, **env}, cwd=ROOT)
            rendered[name] = dict(np.load(out))
    native = rendered["native"]
    aten, glue, threads = (str(value) for value in native["info"])
    rows = [{"setting": name, "cells": [compare(result[key], native[key]) for key in (f"{m} {p}" for m, p in CASES)]}
            for name, result in rendered.items() if name != "native"]
    data = {"pairs": args.pairs, "aten": aten, "kernels": glue, "threads": int(threads),
            "cases": [f"RIFE {m} {p}" for m, p in CASES], "rows": rows}
    return render.publish({f"isa_rounding-{harness.cpu_kind()}": data},
                          f"python -m benchmarks.isa_rounding --pairs {args.pairs}")


if __name__ == "__main__":
    sys.exit(main())
