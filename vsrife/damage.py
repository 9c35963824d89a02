"""Damaged sources: what ffmpeg's demuxer finds in a file's video stream (packets, errors), and the note that tells
the user what is lost."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import ffmpeg

from .errors import MediaError
from .ffmpeg_binary import ffmpeg_command
from .timing import TIMESTAMP_TOLERANCE_MS, Timing

# A container that declares this many seconds more than its video decodes to is read once more to check it.
DAMAGE_TOLERANCE_S = 0.5


@dataclass(frozen=True)
class VideoPackets:
    """The first video stream of a file as ffmpeg's demuxer reads it (nothing decoded)."""

    count: int
    times_ms: tuple[float, ...]  # presentation times, on the timeline BestSource's timestamps use
    errors: tuple[str, ...]  # what ffmpeg reported on the way (a truncated or damaged file)

    def inside(self, start_ms: float, end_ms: float) -> int:
        """Packets shown strictly between two frames' times: frames there that did not decode."""
        return sum(start_ms + TIMESTAMP_TOLERANCE_MS < time < end_ms - TIMESTAMP_TOLERANCE_MS
                   for time in self.times_ms)


def read_video_packets(path: Path) -> VideoPackets:
    """The packets of `path`'s first video stream: count, times and the demuxer's errors."""
    listing = ffmpeg.output(ffmpeg.input(str(path))["v:0"], "-", c="copy", f="framecrc")
    result = subprocess.run(ffmpeg_command(listing, "-copyts"), capture_output=True, text=True, check=False,
                            errors="replace")
    # without the "[in#0/mov,mp4,... @ 0x55d...]" context that ffmpeg puts in front
    errors = [re.sub(r"^(\[[^]]*\]\s*)+", "", line.strip()) for line in result.stderr.splitlines() if line.strip()]
    base = re.search(r"^#tb 0: (\d+)/(\d+)", result.stdout, re.MULTILINE)
    rows = [line.split(",") for line in result.stdout.splitlines() if line and not line.startswith("#")]
    if result.returncode != 0 and not rows:
        raise MediaError(f"ffmpeg cannot read {path.name}: {' / '.join(errors[-3:]) or 'no message'}")
    unit = 1000 * int(base.group(1)) / int(base.group(2)) if base else 0.0
    times = tuple(int(row[2]) * unit for row in rows if len(row) > 2 and row[2].strip().lstrip("-").isdigit())
    return VideoPackets(len(rows), times, tuple(errors))


def count_video_frames(path: Path) -> int:
    """Frames of the first video stream of `path`, counted by ffmpeg from its packets (nothing is decoded)."""
    return read_video_packets(path).count


@dataclass(frozen=True)
class Damage:
    """What is wrong with a video stream: the last error ffmpeg reported, and how far it decodes."""

    error: str | None
    declared_s: float | None  # the duration the container declares
    decoded_s: float  # from the file's start to the end of its last frame that decodes
    frames: int  # frames that decode

    def note(self, name: str, timing: Timing) -> str:
        """One line: what is damaged, what is missing (the end, frames in the middle), what the output holds."""
        reason = f" (ffmpeg: {self.error})" if self.error else ""
        lost = []
        truncated = self.declared_s is not None and self.declared_s - self.decoded_s > DAMAGE_TOLERANCE_S
        if truncated:
            assert self.declared_s is not None
            lost.append(f"its container declares {self.declared_s:.2f} s, but its video decodes to "
                        f"{self.decoded_s:.2f} s ({self.frames} frames): about "
                        f"{self.declared_s - self.decoded_s:.2f} s are missing at the end")
        if timing.gaps:
            lost.append(f"{timing.describe_missing()} of its {timing.rate_text()} fps do not decode "
                        f"({timing.describe_gaps()}), and the frame before each gap is repeated in their place")
        lost = lost or [f"its video decodes to {self.decoded_s:.2f} s ({self.frames} frames)"]
        return (f"{name} is damaged{reason}: {'; '.join(lost)}. The output holds the frames that decode"
                + (", and its audio and subtitles are cut to their length" if truncated else ""))
