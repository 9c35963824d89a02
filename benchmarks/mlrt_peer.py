"""RIFE 4.0 on the CPU: ours against vs-mlrt's OpenVINO plugin (`core.ov`), same weights, same frames, same run.

Run: `.venv/bin/python benchmarks/mlrt_peer.py [--frames N] [--rounds R]` (needs the `bench` extra:
`pip install -e .[bench]`); `build.py bench` includes it. It exports the published RIFE 4.0 weights, through our
module, to ONNX in the input layout of vs-mlrt's RIFE models (`vsmlrt.RIFEMerge`, implementation 1: one input of
11 planes: img0 RGB, img1 RGB, the timestep plane, the horizontal and vertical grid planes normalised to [-1, 1],
and two planes holding the size of one pixel in those units), feeds it through `core.ov.Model` the way vsmlrt.py
builds its clips, and times it against `core.vfi.RIFE` on bigbuckbunny.mp4 at 1280x720 in alternating rounds.
Quality: PSNR of every runtime's frames against our fp32 frames, and the frame-drop protocol (the clip's even frames
are interpolated, the real odd frames are the truth). Prints the table and replaces the "CPU peer: vs-mlrt OpenVINO"
section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import hashlib
import importlib.util
import inspect
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import vapoursynth as vs
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from conftest import clip_from_frames, decode_rgb, psnr  # noqa: E402
from report import update_section  # noqa: E402
from sample_media import fetch_sample  # noqa: E402

from vsrife import registry, weights  # noqa: E402
from vsrife.engine import cpu_has_native_bf16, select_precision  # noqa: E402
from vsrife.models import build_model, layers, rife_v4_0  # noqa: E402
from vsrife.models.rife_v4_0 import RIFE40  # noqa: E402

SECTION = "## CPU peer: vs-mlrt OpenVINO"
INSTALL_HINT = "pip install -e '.[bench]' (vapoursynth-mlrt-ov: Linux x86-64 wheels only; onnx)"
SAMPLE = "bigbuckbunny.mp4"  # 1280x720
SAMPLE_FRAMES = 132
# vs-mlrt's RIFE v4.0 ONNX (implementation 1) needs frames whose sides are multiples of 32; the user pads to that
MLRT_MULTIPLE = 32
INPUT_PLANES = 11  # 3 + 3 RGB, timestep, grid x, grid y, pixel size x, pixel size y
# short rounds, many of them: on a shared machine a burst of other work then lands on every runtime alike
ROUNDS = 4
OPSET = 17  # GridSample entered ONNX in opset 16


class MlrtLayoutRIFE40(nn.Module):
    """Our RIFE 4.0 blocks behind vs-mlrt's single-input layout; output: the RGB frame at the timestep.

    The grid and pixel-size planes replace the shape-dependent grid of `layers.warp`, so the graph is static. As in
    any traced graph, the published large-motion rerun (a data-dependent branch) is left out, and the upsampling
    runs as the published transposed convolution, not our 3x3-convolution form (Upsample2x).
    """

    def __init__(self, net: RIFE40) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        for block in (net.block0, net.block1, net.block2, net.block3):
            block = copy.deepcopy(block)
            plain = nn.ConvTranspose2d(block.lastconv.in_channels, block.lastconv.out_channels, 4, 2, 1)
            plain.load_state_dict(block.lastconv.state_dict())
            block.lastconv = plain
            self.blocks.append(block)
        self.flow_scales = list(net.flow_scales)  # at scale 1

    @staticmethod
    def _warp(image: Tensor, flow: Tensor, grid_x: Tensor, grid_y: Tensor, step_x: Tensor, step_y: Tensor) -> Tensor:
        # same sampling as layers.warp: align_corners=True, so one pixel is 2 / (size - 1) in grid units
        grid = torch.cat((grid_x + flow[:, 0:1] * step_x, grid_y + flow[:, 1:2] * step_y), 1).permute(0, 2, 3, 1)
        return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)

    def forward(self, planes: Tensor) -> Tensor:
        img0, img1, t = planes[:, 0:3], planes[:, 3:6], planes[:, 6:7]
        grid_x, grid_y, step_x, step_y = planes[:, 7:8], planes[:, 8:9], planes[:, 9:10], planes[:, 10:11]
        flow: Tensor | None = None
        mask: Tensor | None = None
        warped0, warped1 = img0, img1
        for block, scale in zip(self.blocks, self.flow_scales, strict=True):
            parts = [warped0, warped1, t, *(() if mask is None else (mask,))]
            d_flow, d_mask, _ = block(torch.cat(parts, 1), flow, scale)
            flow = d_flow if flow is None else flow + d_flow
            mask = d_mask if mask is None else mask + d_mask
            warped0 = self._warp(img0, flow[:, 0:2], grid_x, grid_y, step_x, step_y)
            warped1 = self._warp(img1, flow[:, 2:4], grid_x, grid_y, step_x, step_y)
        assert mask is not None
        weight = torch.sigmoid(mask)
        return warped0 * weight + warped1 * (1 - weight)


def padded_size(width: int, height: int) -> tuple[int, int]:
    return -(-width // MLRT_MULTIPLE) * MLRT_MULTIPLE, -(-height // MLRT_MULTIPLE) * MLRT_MULTIPLE


def load_rife40() -> RIFE40:
    """Our RIFE 4.0 module with the published weights (fetched into the cache when absent)."""
    entry = registry.get_model("4.0")
    net = build_model(entry.architecture, weights.load_state_dicts(weights.resolve_weight_files(entry, None)))
    assert isinstance(net, RIFE40)
    return net


def export_onnx(path: Path, width: int, height: int) -> Path:
    """Write the fp32 ONNX of MlrtLayoutRIFE40 for a fixed width x height (multiples of 32) to path."""
    if width % MLRT_MULTIPLE or height % MLRT_MULTIPLE:
        raise ValueError(f"the ONNX takes frames padded to multiples of {MLRT_MULTIPLE}, got {width}x{height}")
    wrapper = MlrtLayoutRIFE40(load_rife40()).eval()
    example = torch.rand(1, INPUT_PLANES, height, width)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a name of this process's own, so that runs exporting the same file at once do not write into each other
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    with torch.inference_mode():
        # the TorchScript exporter (needs the onnx package) writes one self-contained file; dynamo's needs more
        torch.onnx.export(wrapper, (example,), str(partial), input_names=["input"], output_names=["output"],
                          opset_version=OPSET, dynamo=False)
    partial.replace(path)
    return path


def export_key(width: int, height: int) -> str:
    """What the exported file depends on: the weights, the code that defines the graph, torch, the size."""
    digest = hashlib.sha256(registry.get_model("4.0").files[0].sha256.encode())
    for module in (sys.modules[__name__], rife_v4_0, layers):
        digest.update(Path(inspect.getfile(module)).read_bytes())
    digest.update(f"{torch.__version__} {width}x{height}".encode())
    return digest.hexdigest()[:16]


def cached_onnx(width: int, height: int) -> Path:
    """The exported ONNX for this padded size from the cache, exported first when absent or out of date."""
    path = weights.cache_dir() / "_onnx" / f"rife40_mlrt_{width}x{height}_{export_key(width, height)}.onnx"
    if not path.exists():
        print(f"exporting {path}", flush=True)
        export_onnx(path, width, height)
    return path


def peer_unavailable_reason() -> str | None:
    """None when core.ov (vs-mlrt's OpenVINO plugin) is loaded and onnx (the exporter's) imports, else why not."""
    missing = []
    if not hasattr(vs.core, "ov"):
        missing.append("vs-mlrt's OpenVINO plugin (core.ov) is not loaded")
    if importlib.util.find_spec("onnx") is None:
        missing.append("the onnx package (torch's ONNX exporter needs it) is missing")
    return "; ".join(missing) + f"; to install: {INSTALL_HINT}" if missing else None


def ov_version() -> str:
    info = {key: value.decode() if isinstance(value, bytes) else str(value)
            for key, value in vs.core.ov.Version().items()}
    return f"vs-mlrt {info['version']}, OpenVINO {info['openvino_version_build']}"


def pad_replicate(clip: vs.VideoNode, width: int, height: int) -> vs.VideoNode:
    """The clip grown to width x height by repeating its last column and row (as our engine pads)."""
    if clip.height < height:
        clip = vs.core.std.StackVertical([clip, *[clip.std.Crop(top=clip.height - 1)] * (height - clip.height)])
    if clip.width < width:
        clip = vs.core.std.StackHorizontal([clip, *[clip.std.Crop(left=clip.width - 1)] * (width - clip.width)])
    return clip


def constant_plane(clip: vs.VideoNode, values: np.ndarray) -> vs.VideoNode:
    """A GRAYS clip as long as `clip` whose every frame holds `values` (height x width), built once."""
    height, width = values.shape
    blank = vs.core.std.BlankClip(format=vs.GRAYS, width=width, height=height, length=1)

    def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        np.copyto(np.asarray(out[0]), values)
        return out

    return blank.std.ModifyFrame(clips=blank, selector=fill).std.Loop(clip.num_frames)


def mlrt_inputs(initial: vs.VideoNode, terminal: vs.VideoNode, timestep: float) -> list[vs.VideoNode]:
    """The clips vsmlrt.RIFEMerge hands to the runtime: both frames, the timestep, two grids, two pixel sizes."""
    width, height = initial.width, initial.height
    gray = {"format": vs.GRAYS, "width": width, "height": height, "length": initial.num_frames, "keep": True}
    # 2 i / (size - 1) - 1: pixel centres from -1 to 1, computed in double and stored as float32 like vsmlrt.py
    columns = np.arange(width, dtype=np.float64) * 2 / (width - 1) - 1
    rows = np.arange(height, dtype=np.float64) * 2 / (height - 1) - 1
    return [
        initial,
        terminal,
        vs.core.std.BlankClip(color=timestep, **gray),
        constant_plane(initial, np.broadcast_to(columns, (height, width)).astype(np.float32)),
        constant_plane(initial, np.broadcast_to(rows[:, None], (height, width)).astype(np.float32)),
        vs.core.std.BlankClip(color=2 / (width - 1), **gray),
        vs.core.std.BlankClip(color=2 / (height - 1), **gray),
    ]


def ov_config(precision: str) -> dict[str, str | int]:
    """vsmlrt.Backend.OV_CPU()'s defaults (one stream, all cores, pinned threads) with the precision hint."""
    return {"NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": 0, "ENABLE_CPU_PINNING": "YES",
            "INFERENCE_PRECISION_HINT": {"fp32": "f32", "bf16": "bf16"}[precision]}


def ov_midpoints(clip: vs.VideoNode, network: Path, precision: str) -> vs.VideoNode:
    """Frame k: the frame halfway between clip frames k and k+1 from core.ov (the last one repeats the last)."""
    width, height = padded_size(clip.width, clip.height)
    padded = pad_replicate(clip, width, height)
    # frame k + 1 at position k, the last frame standing in for the missing one (as vsmlrt.RIFE does)
    following = padded.std.DuplicateFrames(frames=padded.num_frames - 1).std.Trim(first=1)
    config = ov_config(precision)
    merged = vs.core.ov.Model(mlrt_inputs(padded, following, 0.5), str(network), device="CPU",
                              fp16=False, config=lambda: config)
    return merged.std.Crop(right=width - clip.width, bottom=height - clip.height)


def ours_midpoints(clip: vs.VideoNode, precision: str) -> vs.VideoNode:
    """Frame k: the frame halfway between clip frames k and k+1 from core.vfi.RIFE (precision "auto": the default)."""
    doubled = vs.core.vfi.RIFE(clip, multi=2, model="4.0", device="cpu", precision=precision)
    return doubled.std.SelectEvery(cycle=2, offsets=1)


def rgb_of(frame: vs.VideoFrame) -> np.ndarray:
    """The frame as a (height, width, 3) float32 array."""
    return np.stack([np.asarray(frame[p]) for p in range(3)], axis=2)


@dataclass
class Runtime:
    name: str
    build: Callable[[vs.VideoNode], vs.VideoNode]  # RGBS clip -> its midpoints clip
    seconds: list[float]
    psnr_vs_ours: list[float]
    psnr_vs_real: list[float]


def runtimes(network: Path) -> list[Runtime]:
    """Ours and core.ov in fp32 and bf16; ours fp32 first: it is what the others are compared with."""
    auto = "bf16" if select_precision("auto", torch.device("cpu"), mixed=True) == torch.bfloat16 else "fp32"
    builders: list[tuple[str, Callable[[vs.VideoNode], vs.VideoNode]]] = [
        ("ours (core.vfi.RIFE) fp32", lambda clip: ours_midpoints(clip, "fp32")),
        (f"ours (core.vfi.RIFE) default settings (precision auto: {auto})", lambda clip: ours_midpoints(clip, "auto")),
        ("vs-mlrt OV_CPU fp32", lambda clip: ov_midpoints(clip, network, "fp32")),
        ("vs-mlrt OV_CPU bf16", lambda clip: ov_midpoints(clip, network, "bf16")),
    ]
    return [Runtime(name, build, [], [], []) for name, build in builders]


def frames_needed(frame_count: int, rounds: int) -> int:
    """Video frames for the timed pairs and one warm-up pair, each pair with its real middle frame."""
    return 2 * (frame_count * rounds + 1) + 1


def max_frames(rounds: int) -> int:
    return max(f for f in range(1, SAMPLE_FRAMES) if frames_needed(f, rounds) <= SAMPLE_FRAMES)


def measure(frame_count: int, rounds: int) -> str:
    """Alternating rounds on the same frame pairs; returns the BENCHMARKS.md section."""
    if frame_count > max_frames(rounds):
        raise ValueError(f"{SAMPLE} has pairs for at most {max_frames(rounds)} frames in each of {rounds} rounds")
    video = decode_rgb(fetch_sample(SAMPLE), frames_needed(frame_count, rounds))
    height, width = video.shape[1:3]
    kept = np.ascontiguousarray(video[0::2])  # frame-drop protocol: the odd frames are the truth
    network = cached_onnx(*padded_size(width, height))
    cases = runtimes(network)
    # every runtime reads its own copy of the source, so none gets frames another one already pulled through
    outputs = [case.build(clip_from_frames(kept)) for case in cases]
    warm_up = frame_count * rounds  # a pair outside the timed ones: weights, compiled kernels, allocators
    for out in outputs:
        out.get_frame(warm_up)
    for round_index in range(rounds):
        pairs = range(round_index * frame_count, (round_index + 1) * frame_count)
        reference: dict[int, np.ndarray] = {}
        for case, out in zip(cases, outputs, strict=True):
            for k in pairs:
                started = time.perf_counter()
                frame = out.get_frame(k)
                case.seconds.append(time.perf_counter() - started)
                image = rgb_of(frame)
                reference.setdefault(k, image)  # the first case is ours fp32
                case.psnr_vs_ours.append(psnr(image, reference[k]))
                case.psnr_vs_real.append(psnr(image, video[2 * k + 1]))
            print(f"round {round_index + 1}/{rounds}: {case.name}: {statistics.median(case.seconds[-frame_count:]):.3f}"
                  " s/frame", flush=True)
    return section(cases, frame_count, rounds, width, height)


def section(cases: list[Runtime], frame_count: int, rounds: int, width: int, height: int) -> str:
    from bench import cpu_name

    ov_bf16 = statistics.median(cases[-1].seconds)
    default = statistics.median(cases[1].seconds)
    goal = (f"Goal (issue 8): ours with default settings in at most half the time of OV bf16, PSNR within 0.1 dB of "
            f"ours fp32. This run: {default / ov_bf16:.2f}x the time of OV bf16 "
            f"({'met' if default <= ov_bf16 / 2 else 'not met'}), frame-drop PSNR "
            f"{float(np.mean(cases[1].psnr_vs_real)) - float(np.mean(cases[0].psnr_vs_real)):+.3f} dB against ours "
            "fp32.")
    rows = []
    for case in cases:
        seconds = statistics.median(case.seconds)
        vs_ours = ("reference" if case is cases[0] else
                   f"{float(np.mean(case.psnr_vs_ours)):.2f} dB (worst {min(case.psnr_vs_ours):.2f})")
        rows.append(f"| {case.name} | {seconds:.3f} | {seconds / ov_bf16:.2f} | {vs_ours} | "
                    f"{float(np.mean(case.psnr_vs_real)):.2f} dB |")
    table = ("| runtime | s/frame | time vs OV bf16 | PSNR vs ours fp32 | frame-drop PSNR |\n"
             "| --- | --- | --- | --- | --- |\n" + "\n".join(rows))
    print(table, flush=True)
    bf16_note = "has" if cpu_has_native_bf16() else "lacks"
    return (
        f"{SECTION}\n\n"
        f"RIFE 4.0 at {width}x{height} ({SAMPLE}), {datetime.date.today().isoformat()} on {cpu_name()} "
        f"({bf16_note} native bf16), {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"{ov_version()}. Command: `python3 build.py bench` (or `benchmarks/mlrt_peer.py --frames {frame_count} "
        f"--rounds {rounds}`).\n\n"
        "Both sides run the published 4.0 weights end to end through VapourSynth on the same frame pairs: ours as "
        "`core.vfi.RIFE`, the peer as `core.ov.Model` (vs-mlrt's OpenVINO CPU plugin, `vsmlrt.Backend.OV_CPU` "
        "defaults: one stream, pinned threads) fed the clips `vsmlrt.RIFEMerge` builds (both frames, the timestep "
        "plane, the normalised grid planes and the pixel-size planes) and an fp32 ONNX that this benchmark exports "
        "from our module in that layout; bf16 is OpenVINO's inference-precision hint on the same file. The static "
        "graph leaves out the published large-motion rerun of block 0 (a data-dependent branch). The peer's "
        f"frames are padded to multiples of {MLRT_MULTIPLE} (ours to {RIFE40().alignment(1.0)}), both by repeating "
        f"the edge. Median seconds per interpolated frame over {rounds} alternating rounds of {frame_count} frames "
        "(each runtime after one warm-up frame); only ratios within this run count. PSNR vs ours fp32: mean and "
        "worst frame over the same frames; frame-drop PSNR: the even frames of the clip are interpolated and "
        "compared with the real odd ones.\n\n"
        f"{table}\n\n{goal}\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=5, help="interpolated frames timed per runtime and round")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="alternating rounds")
    args = parser.parse_args()
    reason = peer_unavailable_reason()
    if reason is not None:
        print(f"mlrt_peer: skipped: {reason}", file=sys.stderr)
        return 1
    update_section(SECTION, measure(args.frames, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
