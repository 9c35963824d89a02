"""Whether ffmpeg can write the video as asked into a container, how it stores it, and, when it cannot, which of
the user's choices is the reason (the container, the codec, --crf): asked of ffmpeg with one frame."""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ffmpeg

from .errors import MediaError
from .ffmpeg_binary import ffmpeg_command, muxer_defaults, video_encoders
from .listing import parse_dump
from .tags import VideoTags

# Containers that store times in milliseconds: above this rate, frames would share a timestamp.
MILLISECOND_CONTAINERS = (".mkv", ".webm", ".mka", ".mk3d")
MILLISECOND_MAX_FPS = 1000
# Pixel formats that hold the same samples in another order (packed RGB as planar GBR; yuvj: tagged full range).
_SAME_SAMPLES = {"bgr0": "gbrp", "rgb0": "gbrp", "0rgb": "gbrp", "0bgr": "gbrp", "rgb24": "gbrp", "bgr24": "gbrp",
                 "rgb48le": "gbrp16le", "rgb48be": "gbrp16le", "bgr48le": "gbrp16le", "bgr48be": "gbrp16le",
                 "gbrp16be": "gbrp16le", "yuvj420p": "yuv420p", "yuvj422p": "yuv422p", "yuvj444p": "yuv444p",
                 "yuvj440p": "yuv440p", "yuvj411p": "yuv411p"}


def same_samples(a: str, b: str) -> bool:
    """Two pixel formats hold the same samples (a lossless change of layout)."""
    return _SAME_SAMPLES.get(a, a) == _SAME_SAMPLES.get(b, b)


@dataclass(frozen=True)
class Frame:
    """What a trial writes: one frame of this size and pixel format, with these tags."""

    width: int = 64
    height: int = 64
    pix_fmt: str = "yuv420p"
    tags: VideoTags = field(default_factory=VideoTags)

    def describe(self) -> str:
        return f"{self.width}x{self.height} {self.pix_fmt}"


@dataclass(frozen=True)
class Trial:
    """One frame written: the pixel format it was stored in (None: ffmpeg failed), the muxer, ffmpeg's messages."""

    stored: str | None
    muxer: str | None
    messages: str


def trial(suffix: str, options: Mapping[str, Any], frame: Frame, pad: tuple[int, int] = (0, 0)) -> Trial:
    """Write one such frame with these options into a *suffix file (padded by `pad`), in a scratch folder."""
    with tempfile.TemporaryDirectory(prefix="vsrife-") as scratch:
        path = Path(scratch) / f"trial{suffix}"
        source = ffmpeg.input(f"color=size={frame.width}x{frame.height}:duration=0.04", f="lavfi",
                              **frame.tags.input_options())
        tags = VideoTags(frame.tags.colour, frame.tags.sar, None, pad)
        video = tags.filtered(source.video.filter("format", frame.pix_fmt))
        command = ffmpeg_command(ffmpeg.output(video, str(path), frames=1, **options), loglevel="info")
        result = subprocess.run(command, capture_output=True, text=True, check=False, errors="replace")
        muxer = re.search(r"\[out#0/(\w+) @", result.stderr)
        stored = None
        if result.returncode == 0:  # the format the encoder was given, as ffmpeg lists the output stream
            listed = parse_dump(result.stderr.partition("Output #0")[2]).video
            stored = (listed.pixel_format if listed else None) or frame.pix_fmt
        return Trial(stored, muxer.group(1) if muxer else None, result.stderr)


@dataclass(frozen=True)
class EncoderFit:
    """How the encoder stores the frames: its pixel format, and the padding it needs."""

    pixel_format: str
    pad: tuple[int, int] = (0, 0)


def check_container(suffix: str, options: Mapping[str, Any], frame: Frame = Frame()) -> EncoderFit:
    """Whether ffmpeg can write such a frame with these options into a *suffix file, and how it stores it; a
    MediaError naming the user's choice that it cannot take (padding an odd size to an even one is tried first)."""
    if not suffix:
        raise MediaError("the output name needs an extension (.mp4, .mkv, .webm, ...): it picks the container")
    odd = (frame.width % 2, frame.height % 2)
    first = None
    for pad in [(0, 0), odd] if any(odd) else [(0, 0)]:
        result = trial(suffix, options, frame, pad)
        if result.stored is not None:
            return EncoderFit(result.stored, pad)
        first = first or result
    assert first is not None
    raise MediaError(_refusal(suffix, options, frame, first))


def container_encoder(suffix: str, frame: Frame) -> str | None:
    """The first of this ffmpeg's encoders of the container's own video codec that writes the frame into a *suffix
    file (None: the container has no video codec, or none of its encoders takes the frame)."""
    muxer = trial(suffix, {"c:v": "rawvideo"}, frame).muxer
    codec = muxer_defaults(muxer).get("video") if muxer else None
    for encoder, encodes in video_encoders().items():
        if encodes == codec and trial(suffix, {"c:v": encoder}, frame).stored is not None:
            return encoder
    return None


def _refusal(suffix: str, options: Mapping[str, Any], frame: Frame, failed: Trial) -> str:
    """Why the trial failed, in the user's options: the container, the codec, or --crf."""
    name = options.get("c:v")
    if failed.muxer is None and "Unable to choose an output format" in failed.messages:
        return (f"ffmpeg knows no container for {suffix} files; use an extension it writes (.mp4, .mkv, .webm, "
                ".mov, ...)")
    without_crf = {key: value for key, value in options.items() if key != "crf"}
    if "crf" in options and trial(suffix, without_crf, frame).stored is not None:
        return f"--crf {options['crf']}: {name} does not take it (`ffmpeg -h encoder={name}` gives its range)"
    fitting = container_encoder(suffix, frame)
    if fitting is None:
        return f"a {suffix} file cannot hold this video; write .mp4, .mkv, .webm or .mov"
    if fitting != name:
        return f"--codec {name}: a {suffix} file cannot hold its video; use --codec {fitting}, the container's own"
    errors = [line.strip() for line in failed.messages.splitlines() if re.search(r"error|invalid|cannot|not ",
                                                                                  line, re.IGNORECASE)]
    reason = re.sub(r"^(\[[^]]*\]\s*)+", "", errors[0]) if errors else "no message"
    return f"ffmpeg cannot write {name} video of {frame.describe()} into a {suffix} file ({reason})"
