"""vs-mlrt's OpenVINO runtime (`core.ov`, the `bench` extra) running our RIFE 4.0, fed as vsmlrt.RIFEMerge feeds it.

Our module is exported to ONNX in the input layout of vs-mlrt's RIFE models (`vsmlrt.RIFEMerge`, implementation 1:
one input of 11 planes: img0 RGB, img1 RGB, the timestep plane, the horizontal and vertical grid planes normalised
to [-1, 1], and two planes holding the size of one pixel in those units). The graph is our own RIFE 4.x loop
(vsrife/models, with the plain-PyTorch glue of vsrife/kernels/reference.py, which a tracer can follow); it computes
the sampling grid from the frame size itself, so the grid planes go unused. tests/test_mlrt_peer.py proves that
core.ov then returns our frames; benchmarks/mlrt_peer.py times the two runtimes against each other.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import inspect
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
import vapoursynth as vs
from torch import Tensor, nn

from vsrife import kernels, registry, weights
from vsrife.kernels import reference as glue_reference
from vsrife.models import build_model, layers, rife_v4_0
from vsrife.models.rife_v4_0 import RIFE4, RIFE40

INSTALL_HINT = "pip install -e '.[bench]' (vapoursynth-mlrt-ov: Linux x86-64 wheels only; onnx)"
# vs-mlrt's RIFE v4.0 ONNX (implementation 1) needs frames whose sides are multiples of 32; the user pads to that
MLRT_MULTIPLE = 32
INPUT_PLANES = 11  # 3 + 3 RGB, timestep, grid x, grid y, pixel size x, pixel size y
OPSET = 17  # GridSample entered ONNX in opset 16


class MlrtLayout(nn.Module):
    """Our RIFE 4.x net behind vs-mlrt's single-input layout; output: the RGB frame at the timestep.

    As in any traced graph, a data-dependent branch cannot be part of it: the published large-motion rerun of 4.0
    and 4.1 is left out (vs-mlrt's own exports leave it out too).
    """

    def __init__(self, net: RIFE4) -> None:
        super().__init__()
        self.net = copy.deepcopy(net)
        self.net.large_motion_retry = False

    def forward(self, planes: Tensor) -> Tensor:
        # planes 7-10 (the grid and the pixel size) are what our warp computes from the frame size
        out: Tensor = self.net(planes[:, 0:3], planes[:, 3:6], planes[:, 6:7, :1, :1], 1.0, False)
        return out


def padded_size(width: int, height: int) -> tuple[int, int]:
    return -(-width // MLRT_MULTIPLE) * MLRT_MULTIPLE, -(-height // MLRT_MULTIPLE) * MLRT_MULTIPLE


def load_rife40() -> RIFE40:
    """Our RIFE 4.0 module with the published weights (fetched into the cache when absent)."""
    entry = registry.get_model("4.0")
    net = build_model(entry.architecture, weights.load_state_dicts(weights.resolve_weight_files(entry, None)))
    assert isinstance(net, RIFE40)
    return net


def export_onnx(path: Path, width: int, height: int) -> Path:
    """Write the fp32 ONNX of MlrtLayout(RIFE 4.0) for a fixed width x height (multiples of 32) to path."""
    if width % MLRT_MULTIPLE or height % MLRT_MULTIPLE:
        raise ValueError(f"the ONNX takes frames padded to multiples of {MLRT_MULTIPLE}, got {width}x{height}")
    wrapper = MlrtLayout(load_rife40()).eval()
    example = torch.rand(1, INPUT_PLANES, height, width)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a name of this process's own, so that runs exporting the same file at once do not write into each other
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    with torch.inference_mode(), kernels.reference_only(), warnings.catch_warnings():
        # the tracer warns about torch.as_tensor in general; given the timestep plane (a tensor) it keeps the input,
        # which the test's frames at t = 0.5 from an export traced at random t prove
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # type: ignore[attr-defined]
        # the TorchScript exporter (needs the onnx package) writes one self-contained file; dynamo's needs more
        torch.onnx.export(wrapper, (example,), str(partial), input_names=["input"], output_names=["output"],
                          opset_version=OPSET, dynamo=False)
    partial.replace(path)
    return path


def export_key(width: int, height: int) -> str:
    """What the exported file depends on: the weights, the code that defines the graph, torch, the size."""
    digest = hashlib.sha256(str(registry.get_model("4.0").files[0].sha256).encode())
    for module in (sys.modules[__name__], rife_v4_0, layers, glue_reference):
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
