"""What ffmpeg's header dump (`ffmpeg -i FILE`) says about a file, nothing decoded: its streams with their codecs,
profiles, tags and side data, the global tags, the duration and start the container declares."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from .ffmpeg_binary import ffmpeg_executable

_STREAM = re.compile(r"Stream #\d+:(\d+)(?:\[[^\]]*\])?(?:\((\w+)\))?: (\w+): (.*)")
_DURATION = re.compile(r"Duration: (?:(\d+):(\d\d):(\d\d(?:\.\d+)?)|N/A)(?:, start: (-?[\d.]+))?")


def top_level_fields(detail: str) -> list[str]:
    """The comma-separated fields of a stream line, commas inside parentheses or brackets kept."""
    fields, depth, current = [], 0, ""
    for char in detail:
        depth += (char in "([") - (char in ")]")
        if char == "," and depth == 0:
            fields.append(current.strip())
            current = ""
        else:
            current += char
    return [*fields, current.strip()]


@dataclass(frozen=True)
class StreamEntry:
    """One stream of the dump: `Stream #0:INDEX(LANGUAGE): KIND: DETAIL`, with its Metadata and Side data."""

    index: int
    kind: str  # "video", "audio", "subtitle", "attachment", "data"
    detail: str
    language: str | None = None  # None: not given, or "und"
    tags: dict[str, str] = field(default_factory=dict)  # keys lower-cased
    side_data: list[str] = field(default_factory=list)

    @property
    def attached_picture(self) -> bool:
        """Cover art: a still stored as a video stream (MP4's covr, Matroska's image attachments)."""
        return self.kind == "video" and "(attached pic)" in self.detail

    @property
    def codec(self) -> str:
        return self.detail.split(maxsplit=1)[0].rstrip(",")

    @property
    def profile(self) -> str | None:
        """The codec profile the dump names (High, Standard, LC), not the codec tag `(avc1 / 0x...)`."""
        found = re.match(r"\w+ \(([^)]*)\)", self.detail)
        return found.group(1) if found and " / 0x" not in found.group(1) else None

    @property
    def pixel_format(self) -> str | None:
        fields = top_level_fields(self.detail)
        return re.sub(r"\(.*", "", fields[1]) if self.kind == "video" and len(fields) > 1 else None

    @property
    def size(self) -> tuple[int, int] | None:
        found = re.search(r"\b(\d+)x(\d+)\b", self.detail)
        return (int(found.group(1)), int(found.group(2))) if found else None

    @property
    def container_sar(self) -> Fraction | None:
        """The pixel aspect ratio the container states (a field `SAR a:b DAR c:d` outside the codec's brackets),
        which takes precedence over the bitstream's, as in ffmpeg itself."""
        for item in top_level_fields(self.detail):
            found = re.match(r"SAR (\d+):(\d+) DAR", item)
            if found and int(found.group(2)):
                return Fraction(int(found.group(1)), int(found.group(2)))
        return None

    @property
    def rotation(self) -> float | None:
        """Degrees of the display matrix (counter-clockwise), as the dump states it."""
        for line in self.side_data:
            found = re.search(r"rotation of (-?[\d.]+) degrees", line)
            if found:
                return float(found.group(1))
        return None

    @property
    def start_s(self) -> float | None:
        found = re.search(r", start (-?[\d.]+)", self.detail)
        return float(found.group(1)) if found else None


@dataclass(frozen=True)
class StreamListing:
    """What ffmpeg's header dump says about a file."""

    streams: tuple[StreamEntry, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)  # global metadata, keys lower-cased
    declared_s: float | None = None  # None: the container declares none (or ffmpeg only estimated it)
    start_s: float = 0.0  # where the file's timeline starts (its earliest stream)
    opened: bool = False  # ffmpeg recognised the file
    problem: str | None = None  # why ffmpeg could not open it, in the user's words

    @property
    def kinds(self) -> tuple[str, ...]:
        """The streams' kinds in stream order (cover art counts as "video")."""
        return tuple(stream.kind for stream in self.streams)

    @property
    def attached_pictures(self) -> tuple[StreamEntry, ...]:
        return tuple(stream for stream in self.streams if stream.attached_picture)

    def count(self, kind: str) -> int:
        return sum(stream.kind == kind and not stream.attached_picture for stream in self.streams)

    @property
    def video(self) -> StreamEntry | None:
        """The first video stream that is not cover art: the one BestSource reads."""
        return next((stream for stream in self.streams if stream.kind == "video" and not stream.attached_picture),
                    None)

    @property
    def coded_size(self) -> tuple[int, int] | None:
        return None if self.video is None else self.video.size

    @property
    def timecode(self) -> str | None:
        """The start timecode (HH:MM:SS:FF, `;` before FF for drop-frame) of the video or the file."""
        video_tags = {} if self.video is None else self.video.tags
        return video_tags.get("timecode") or self.tags.get("timecode")


def list_streams(path: Path) -> StreamListing:
    """`path`'s streams as ffmpeg's header dump lists them (nothing is decoded)."""
    dump = subprocess.run([ffmpeg_executable(), "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True,
                          text=True, check=False, errors="replace").stderr
    return parse_dump(dump)


def parse_dump(dump: str) -> StreamListing:
    """The listing of one input from the text of `ffmpeg -i FILE`."""
    streams: list[StreamEntry] = []
    global_tags: dict[str, str] = {}
    owner: dict[str, str] | None = None  # the tags that a Metadata block fills: global, a stream's, or none
    block, block_indent = "", 0
    declared, start = None, 0.0
    for line in dump.splitlines():
        indent, text = len(line) - len(line.lstrip()), line.strip()
        if block and indent > block_indent:
            key, separator, value = text.partition(":")
            if block == "Side data:" and streams and owner is streams[-1].tags:
                streams[-1].side_data.append(text)
            elif block == "Metadata:" and owner is not None and separator and key.strip():
                owner.setdefault(key.strip().lower(), value.strip())
            continue
        block = ""
        if text in ("Metadata:", "Side data:"):
            block, block_indent = text, indent
            continue
        found = _STREAM.match(text)
        if found:
            language = found.group(2) if found.group(2) not in (None, "und") else None
            streams.append(StreamEntry(int(found.group(1)), found.group(3).lower(), found.group(4), language))
            owner = streams[-1].tags
            continue
        duration = _DURATION.match(text)
        if duration:
            if duration.group(1) is not None and "Estimating duration from bitrate" not in dump:
                declared = int(duration.group(1)) * 3600 + int(duration.group(2)) * 60 + float(duration.group(3))
            start = float(duration.group(4) or 0.0)
        owner = global_tags if text.startswith("Input #") else None
    problem = ("its MP4 index (moov atom) is missing, as when a recording stops before it is finished"
               if "moov atom not found" in dump else None)
    return StreamListing(streams=tuple(streams), tags=global_tags, declared_s=declared, start_s=start,
                         opened=any(line.startswith("Input #") for line in dump.splitlines()), problem=problem)
