"""What the output takes from its source besides the frames: audio, subtitles, attachments, cover art, the global
metadata and chapters, the video stream's own tags; cut to the rendered range, each stream starting where the
range starts."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg

from .errors import MediaError
from .ffmpeg_binary import ffmpeg_command
from .listing import StreamEntry, StreamListing, list_streams

# Said when nothing is: ffmpeg then picks the container's own default encoder for the stream.
CONTAINER_DEFAULT: dict[str, Any] = {}
# Text subtitles for containers that have no default subtitle encoder in ffmpeg.
SUBTITLE_CODECS = {".mp4": "mov_text", ".m4v": "mov_text", ".mov": "mov_text", ".webm": "webvtt"}
# Containers that hold attachments (fonts, cover art as a file); WebM does not.
MATROSKA = (".mkv", ".mka", ".mk3d")
# A stream specifier that matches nothing (the 10000th video stream, optional): maps a file for its metadata alone
NO_STREAM = "v:9999?"
# Cover art copied as an attached picture (MP4's covr)
COVER_COPY = {"c:v": "copy", "disposition:v": "attached_pic"}
# Cover art codecs as image files: extension, MIME type.
IMAGE_FILES = {"mjpeg": (".jpg", "image/jpeg"), "png": (".png", "image/png"), "bmp": (".bmp", "image/bmp"),
               "webp": (".webp", "image/webp"), "gif": (".gif", "image/gif")}


@dataclass(frozen=True)
class Companion:
    """The input file whose streams go into the output beside the frames, and the part of it the output holds."""

    path: Path
    listing: StreamListing
    start_s: float = 0.0  # where the output starts in the file (a cut's start), from the file's start
    duration_s: float | None = None  # how long the output lasts (a cut), None: as long as the file

    def input(self) -> Any:
        options: dict[str, Any] = {"ss": f"{self.start_s:.6f}"} if self.start_s else {}
        if self.duration_s is not None:
            options["t"] = f"{self.duration_s:.6f}"
        return ffmpeg.input(str(self.path), **options)

    def packet_filter(self) -> str:
        """A bitstream filter for copied audio: packets that start before the cut (a seek keeps them) or end after
        it are dropped, so that the audio lies within the video."""
        drops = [r"lt(pts\,0)"] if self.start_s else []
        drops += [] if self.duration_s is None else [rf"gt(pts+duration\,{self.duration_s:.6f}/tb)"]
        return f"noise=drop={'+'.join(drops)}"

    def cue_filters(self) -> str:
        """Bitstream filters for subtitles: a cue that ends before the cut's start is dropped, one that runs across
        it starts there, one that runs past the cut's end ends there (ffmpeg keeps whole packets)."""
        end = "" if self.duration_s is None else f"\\,{self.duration_s:.6f}/TB"
        until = f"min(PTS+DURATION{end})" if end else "PTS+DURATION"
        return (r"noise=drop=gt(duration\,0)*lte(pts+duration\,0),"
                rf"setts=ts=max(PTS\,0):duration=if(gt(DURATION\,0)\,{until}-max(PTS\,0)\,0)")


@dataclass(frozen=True)
class CoverFile:
    """Cover art that the container takes only as an attached file (Matroska), extracted when the output is made."""

    source: Path
    stream: int
    filename: str
    mimetype: str

    def extract(self, folder: Path) -> Path:
        target = folder / self.filename
        copy = ffmpeg.output(ffmpeg.input(str(self.source))[str(self.stream)], str(target), c="copy", frames=1,
                             update=1, f="image2")
        result = subprocess.run(ffmpeg_command(copy), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise MediaError(f"ffmpeg cannot copy the cover art of {self.source.name}: {result.stderr.strip()}")
        return target


@dataclass(frozen=True)
class CompanionPlan:
    """The companion's streams to map, the output options for them and for the file, and a cover to attach."""

    streams: list[Any]
    options: dict[str, Any]
    cover: CoverFile | None = None
    attachments: int = 0  # attachment streams mapped before the cover's

    @contextmanager
    def file_options(self) -> Iterator[dict[str, Any]]:
        """The options, with the cover extracted into a file that ffmpeg attaches, for as long as it writes."""
        if self.cover is None:
            yield self.options
            return
        with tempfile.TemporaryDirectory(prefix="vsrife-") as scratch:
            path = self.cover.extract(Path(scratch))
            yield self.options | {"attach": str(path),
                                  f"metadata:s:t:{self.attachments}": f"mimetype={self.cover.mimetype}"}


def stream_plans(suffix: str) -> dict[str, tuple[dict[str, Any] | None, ...]]:
    """Per stream kind, the codec options to try in order; the first the container accepts wins, None drops them."""
    subtitles = SUBTITLE_CODECS.get(suffix.lower())
    return {
        "a": ({"c:a": "copy"}, CONTAINER_DEFAULT, None),
        "s": ({"c:s": "copy"}, {"c:s": subtitles} if subtitles else CONTAINER_DEFAULT, None),
    }


# stream_plans' keys: the kind in ffmpeg's listing, the words for it
_KINDS = {"a": ("audio", "the audio", "fits", "it is"), "s": ("subtitle", "the subtitles", "fit", "they are")}


def companion_plan(companion: Companion, suffix: str, warn: Callable[[str], None]) -> CompanionPlan:
    """The streams to map from the companion and their options for a *suffix container.

    ffmpeg itself is asked, with a fraction of a second of each kind, whether the container takes the streams as
    they are; if not, the container's default encoder is tried, and what fits neither is left out with a warning.
    Matroska outputs also get the attachments (fonts of ASS subtitles); cover art goes where the container takes
    it; every output gets the global metadata, the chapters and the video stream's language and title.
    """
    listing = companion.listing
    name = companion.path.name
    source = companion.input()
    streams: list[Any] = []
    options: dict[str, Any] = {"map_metadata": "1", "map_chapters": "1"}  # input 0 is the pipe of frames
    for kind, plans in stream_plans(suffix).items():
        listed, words, fit, they = _KINDS[kind]
        if listed not in listing.kinds:
            continue
        for plan in plans:
            if plan is None:
                warn(f"{words} of {name} {fit} no {suffix} file; {they} left out")
                break
            if _accepts(source[f"{kind}?"], plan, suffix):
                streams.append(source[f"{kind}?"])
                options |= plan
                if "copy" not in plan.values():
                    warn(f"{words} of {name} cannot be copied into a {suffix} file; converting")
                elif kind == "a" and (companion.start_s or companion.duration_s is not None):  # a cut
                    options["bsf:a"] = companion.packet_filter()
                break
    attachments = listing.kinds.count("attachment")
    if attachments:
        if suffix.lower() in MATROSKA:
            streams.append(source["t?"])
            options["c:t"] = "copy"
        else:
            warn(f"the attachments of {name} (fonts, images) fit only a Matroska file; they are left out of the "
                 f"{suffix} file")
    streams_, cover_options, cover = _covers(companion, source, suffix, warn)
    streams += streams_
    options |= cover_options
    if not streams:  # nothing to copy: the file is still an input, for its metadata and chapters
        streams.append(source[NO_STREAM])
    options |= _video_tags(listing.video)
    if companion.duration_s is not None:
        options["t"] = f"{companion.duration_s:.6f}"  # drops what starts after the cut
    if (companion.duration_s is not None or companion.start_s) and "subtitle" in listing.kinds:
        options["bsf:s"] = companion.cue_filters()
    return CompanionPlan(streams, options, cover, attachments)


def _covers(companion: Companion, source: Any, suffix: str,
            warn: Callable[[str], None]) -> tuple[list[Any], dict[str, Any], CoverFile | None]:
    """Cover art: copied as an attached picture where the container takes one, attached as a file to Matroska."""
    streams: list[Any] = []
    options: dict[str, Any] = {}
    attached = None
    for cover in companion.listing.attached_pictures:
        file = IMAGE_FILES.get(cover.codec)
        if suffix.lower() in MATROSKA and file is not None and attached is None:
            filename = cover.tags.get("filename") or f"cover{file[0]}"
            attached = CoverFile(companion.path, cover.index, filename, cover.tags.get("mimetype") or file[1])
        elif suffix.lower() not in MATROSKA and _accepts(source[str(cover.index)], COVER_COPY, suffix, cover=True):
            position = 1 + len(streams)  # output video stream 0 is the frames
            options |= {f"c:v:{position}": "copy", f"disposition:v:{position}": "attached_pic"}
            streams.append(source[str(cover.index)])
        else:
            warn(f"the cover art of {companion.path.name} ({cover.codec}) fits no {suffix} file; it is left out")
    return streams, options, attached


def _video_tags(video: StreamEntry | None) -> dict[str, str]:
    """The source video stream's language and title for the output's (output stream 0, the frames: named two
    ways, as ffmpeg-python writes each option once)."""
    if video is None:
        return {}
    tags = {"metadata:s:v:0": f"language={video.language}"} if video.language else {}
    title = video.tags.get("title") or video.tags.get("name")  # MP4 reads a track's title back as "name"
    return tags | ({"metadata:s:0": f"title={title}"} if title else {})


def _accepts(stream: Any, plan: Mapping[str, Any], suffix: str, cover: bool = False) -> bool:
    """Whether ffmpeg writes a fraction of a second of the stream into a *suffix file (cover art: and keeps it as
    cover art; a muxer may drop it without a word)."""
    with tempfile.TemporaryDirectory(prefix="vsrife-") as scratch:
        path = Path(scratch) / f"trial{suffix}"
        trial = ffmpeg.output(stream, str(path), t=0.2, **plan)
        if subprocess.run(ffmpeg_command(trial), capture_output=True, check=False).returncode != 0:
            return False
        return not cover or bool(list_streams(path).attached_pictures)
