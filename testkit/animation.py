"""Animation-like clips made from real video for the dedup tests and benchmark: drawings held for 2 or 3 frames
("on twos", "on threes"), losslessly or through an x264 round trip, and stills."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .frames import ffmpeg_executable


def held_indices(count: int, hold: int) -> list[int]:
    """For each of `count` frames, the source frame it shows when every `hold`-th frame is held `hold` frames."""
    return [i - i % hold for i in range(count)]


def on_holds(frames: np.ndarray, hold: int) -> np.ndarray:
    """The clip drawn "on twos" (hold=2) or "on threes" (hold=3): frame i shows frame i - i % hold."""
    return np.ascontiguousarray(frames[held_indices(len(frames), hold)])


def x264_roundtrip(frames: np.ndarray, crf: int, preset: str = "medium", fps: int = 24) -> np.ndarray:
    """The frames (n, h, w, 3) float RGB in [0, 1] encoded with libx264 (yuv420p) and decoded back to RGB."""
    count, height, width, _ = frames.shape
    raw = (np.clip(frames, 0.0, 1.0) * 255.0).round().astype(np.uint8).tobytes()
    ffmpeg = ffmpeg_executable()
    with tempfile.TemporaryDirectory() as scratch:
        encoded = Path(scratch) / "encoded.mkv"
        subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
                        "-s", f"{width}x{height}", "-r", str(fps), "-i", "-", "-c:v", "libx264", "-preset", preset,
                        "-crf", str(crf), "-pix_fmt", "yuv420p", str(encoded)], input=raw, check=True)
        decoded = subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-i", str(encoded),
                                  "-pix_fmt", "rgb24", "-f", "rawvideo", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(decoded, dtype=np.uint8).reshape(count, height, width, 3).astype(np.float32) / 255.0
