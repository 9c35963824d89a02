"""Media input for the command line: a source's streams, timing, colour, shape and damage, and the ffmpeg it runs.

Decoding is BestSource's (`core.bs.VideoSource`); ffmpeg lists the streams. Encoding is in encoding.py.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

import ffmpeg
import vapoursynth as vs

from .errors import VfiError
from .ffmpeg_binary import find_ffmpeg

# Frame-time jitter up to this much (containers round timestamps to 1 ms) still counts as a constant rate.
TIMESTAMP_TOLERANCE_MS = 1.5
# A variable-rate source is converted to its average rate, snapped to one of these when within 1 % of it.
COMMON_RATES = tuple(Fraction(n, d) for n, d in ((24000, 1001), (24, 1), (25, 1), (30000, 1001), (30, 1),
                                                  (48, 1), (50, 1), (60000, 1001), (60, 1), (120, 1)))


class MediaError(VfiError, ValueError):
    """A source, codec or output that cannot be used; the message is meant for the user."""


@cache
def ffmpeg_executable() -> str:
    """The ffmpeg on PATH, else the one bundled with imageio-ffmpeg."""
    found = find_ffmpeg()
    if found is None:
        raise MediaError("ffmpeg not found: put it on PATH or `pip install imageio-ffmpeg`")
    return found


def ffmpeg_command(stream: Any, *global_args: str) -> list[str]:
    """The command line of an ffmpeg-python output: quiet but for errors, overwriting, never reading the terminal."""
    return (stream.global_args("-nostdin", "-loglevel", "error", *global_args).overwrite_output()
            .compile(cmd=ffmpeg_executable()))


@cache
def video_encoders() -> frozenset[str]:
    """Names of the video encoders this ffmpeg has."""
    listing = subprocess.run([ffmpeg_executable(), "-hide_banner", "-encoders"], capture_output=True, text=True,
                             check=False).stdout
    return frozenset(line.split()[1] for line in listing.splitlines()
                     if line.startswith(" V") and len(line.split()) > 1)


# ------------------------------------------------------------------------------------------------ sources


@cache
def ffmpeg_input_options() -> frozenset[str]:
    """The per-file options this ffmpeg lists in its full help (``-mastering_display``, say, in recent ones)."""
    listing = subprocess.run([ffmpeg_executable(), "-hide_banner", "-h", "full"], capture_output=True, text=True,
                             check=False).stdout
    return frozenset(match.group(1) for match in re.finditer(r"^-(\w+)", listing, re.MULTILINE))


@dataclass(frozen=True)
class StreamListing:
    """What ffmpeg's header dump says about a file: its streams' kinds, the first video's coded size, the duration
    the container declares."""

    kinds: tuple[str, ...]  # "video", "audio", "subtitle", "attachment", "data", in stream order
    attached_pictures: int  # video streams that are cover art, not video
    coded_size: tuple[int, int] | None
    declared_s: float | None  # None: the container declares none (or ffmpeg only estimated it)

    def count(self, kind: str) -> int:
        return self.kinds.count(kind) - (self.attached_pictures if kind == "video" else 0)


def list_streams(path: Path) -> StreamListing:
    """`path`'s streams as ffmpeg's header dump lists them (nothing is decoded)."""
    dump = subprocess.run([ffmpeg_executable(), "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True,
                          text=True, check=False, errors="replace").stderr
    streams = re.findall(r"^\s*Stream #\d+:\d+[^:]*: (\w+): (.*)$", dump, re.MULTILINE)
    videos = [detail for kind, detail in streams if kind == "Video" and "(attached pic)" not in detail]
    size = re.search(r", (\d+)x(\d+)\b", videos[0]) if videos else None
    duration = re.search(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", dump)
    estimated = "Estimating duration from bitrate" in dump
    return StreamListing(
        kinds=tuple(kind.lower() for kind, _ in streams),
        attached_pictures=sum("(attached pic)" in detail for kind, detail in streams if kind == "Video"),
        coded_size=(int(size.group(1)), int(size.group(2))) if size else None,
        declared_s=None if duration is None or estimated else
        int(duration.group(1)) * 3600 + int(duration.group(2)) * 60 + float(duration.group(3)),
    )


@dataclass(frozen=True)
class HdrMetadata:
    """HDR10 static metadata in the x265 / ffmpeg notation (``G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min)``,
    ``MaxCLL,MaxFALL``)."""

    mastering_display: str | None
    content_light: str | None

    def describe(self) -> str:
        return " and ".join(name for name, value in (("the mastering display", self.mastering_display),
                                                     ("MaxCLL/MaxFALL", self.content_light)) if value)


# Per-frame metadata that BestSource exports and the y4m pipe (and our frames) cannot carry: prop -> what it is.
DYNAMIC_HDR_PROPS = {"HDR10Plus": "HDR10+ dynamic metadata (SMPTE ST 2094-40)",
                     "DolbyVisionRPU": "Dolby Vision metadata (RPU)"}
# _Transfer values of HDR signals: SMPTE ST 2084 (PQ) and ARIB STD-B67 (HLG).
HDR_TRANSFERS = (16, 18)


def hdr_metadata(props: Mapping[str, Any]) -> HdrMetadata | None:
    """The HDR10 static metadata of a frame (BestSource's props), or None when it has none."""
    mastering = None
    keys = ("MasteringDisplayPrimariesX", "MasteringDisplayPrimariesY", "MasteringDisplayWhitePointX",
            "MasteringDisplayWhitePointY", "MasteringDisplayMaxLuminance", "MasteringDisplayMinLuminance")
    if all(key in props for key in keys):
        xs, ys = props["MasteringDisplayPrimariesX"], props["MasteringDisplayPrimariesY"]  # red, green, blue

        def point(x: float, y: float) -> str:  # chromaticity in units of 0.00002
            return f"({round(x * 50000)},{round(y * 50000)})"

        mastering = (f"G{point(xs[1], ys[1])}B{point(xs[2], ys[2])}R{point(xs[0], ys[0])}"
                     f"WP{point(props['MasteringDisplayWhitePointX'], props['MasteringDisplayWhitePointY'])}"
                     f"L({round(props['MasteringDisplayMaxLuminance'] * 10000)},"
                     f"{round(props['MasteringDisplayMinLuminance'] * 10000)})")  # cd/m2 in units of 0.0001
    light = None
    if "ContentLightLevelMax" in props:
        light = f"{int(props['ContentLightLevelMax'])},{int(props.get('ContentLightLevelAverage', 0))}"
    return None if mastering is None and light is None else HdrMetadata(mastering, light)


@dataclass(frozen=True)
class SourceInfo:
    """What the command line needs to know about an input video before building its graph."""

    path: Path
    fps: Fraction
    num_frames: int
    variable_rate: bool
    shortest_ms: float
    longest_ms: float
    rgb: bool  # YUV4MPEG cannot carry it: the graph converts the result to YUV
    colour: dict[str, int | str]  # options of ffmpeg's setparams filter that keep the source's colour description
    width: int = 0
    height: int = 0
    bits: int = 8
    sar: Fraction | None = None  # pixel aspect ratio when it is not 1:1
    field_based: int = 0  # _FieldBased: 0 progressive, 1 bottom field first, 2 top field first
    hdr: HdrMetadata | None = None
    dynamic_hdr: tuple[str, ...] = ()  # descriptions of per-frame metadata that is lost
    alpha: bool = False
    pixel_format: str = "yuv420p"  # of the frames the graph pipes to ffmpeg (RGB sources become YUV 4:4:4)
    decoder_threads: int | None = None  # 1: BestSource reads more frames of this (damaged) file single-threaded
    damaged: bool = False  # the video decodes to less than the container declares
    notes: tuple[str, ...] = ()  # what the user must be told about the source (damage, cropping, extra streams)

    @property
    def high_dynamic_range(self) -> bool:
        return self.colour.get("color_trc") in HDR_TRANSFERS or self.hdr is not None


def open_video(path: Path, **options: Any) -> vs.VideoNode:
    """The video track of `path` through BestSource, or a MediaError saying why it cannot be read."""
    if not path.exists():
        raise MediaError(f"{path}: no such file")
    if not path.is_file():
        raise MediaError(f"{path}: not a file")
    if not hasattr(vs.core, "bs"):
        raise MediaError("BestSource is not installed: pip install vapoursynth-bestsource")
    try:
        return vs.core.bs.VideoSource(str(path), **options)
    except vs.Error as exc:
        reason = str(exc).removeprefix("VideoSource: ")
        listing = list_streams(path)
        if listing.kinds and not listing.count("video"):
            kinds = ", ".join(sorted(set(listing.kinds) - {"video"}) or ["cover art"])
            raise MediaError(f"{path}: has no video stream (only {kinds})") from None
        raise MediaError(f"{path}: not a video BestSource can read ({reason})") from None


def probe(path: Path) -> SourceInfo:
    """Rate, length, constancy of the rate, colour, shape and metadata of `path`'s video track, and what is wrong
    with the file (damage, cropping, streams left out) as notes for the user."""
    listing = list_streams(path)
    with tempfile.TemporaryDirectory(prefix="vsrife-") as scratch:
        timecodes = Path(scratch) / "timecodes.txt"
        clip = open_video(path, timecodes=str(timecodes))
        stamps = [float(line) for line in timecodes.read_text().splitlines()[1:] if line.strip()]
    steps = [b - a for a, b in itertools.pairwise(stamps)] or [1000.0 * clip.fps_den / max(clip.fps_num, 1)]
    average = (stamps[-1] - stamps[0]) / (len(stamps) - 1) if len(stamps) > 1 else steps[0]
    variable = clip.fps_num == 0 or max(abs(step - average) for step in steps) > TIMESTAMP_TOLERANCE_MS
    notes: list[str] = []
    threads, damage = None, None
    decoded_s = (stamps[-1] - stamps[0] + steps[-1]) / 1000 if stamps else 0.0
    if listing.declared_s is not None and listing.declared_s - decoded_s > DAMAGE_TOLERANCE_S:
        clip, threads, damage = _check_whole(path, clip, listing.declared_s, decoded_s)
        notes += [damage] if damage else []
    notes += _stream_notes(path, listing, clip)
    first = clip.get_frame(0)
    props = first.props
    middle = clip.get_frame(clip.num_frames // 2).props
    return SourceInfo(path=path, fps=Fraction(clip.fps_num, clip.fps_den) if clip.fps_num else Fraction(0),
                      num_frames=clip.num_frames, variable_rate=variable, shortest_ms=min(steps),
                      longest_ms=max(steps), rgb=clip.format.color_family == vs.RGB,
                      colour=colour_options(props), width=clip.width, height=clip.height,
                      bits=clip.format.bits_per_sample, sar=pixel_aspect(props),
                      field_based=max(int(props.get("_FieldBased", 0)), int(middle.get("_FieldBased", 0))),
                      hdr=hdr_metadata(props),
                      dynamic_hdr=tuple(name for prop, name in DYNAMIC_HDR_PROPS.items()
                                        if prop in props or prop in middle),
                      alpha="_Alpha" in props, decoder_threads=threads, damaged=damage is not None,
                      pixel_format=pixel_format(clip.format.replace(color_family=vs.YUV, subsampling_w=0,
                                                                    subsampling_h=0)
                                                if clip.format.color_family == vs.RGB else clip.format),
                      notes=tuple(notes))


def pixel_aspect(props: Mapping[str, Any]) -> Fraction | None:
    """A frame's sample aspect ratio (_SARNum/_SARDen) when it is known and not square."""
    sar = Fraction(int(props.get("_SARNum", 0)), max(int(props.get("_SARDen", 1)), 1))
    return sar if sar > 0 and sar != 1 else None


# A container that declares this many seconds more than its video decodes to is read once more to check it.
DAMAGE_TOLERANCE_S = 0.5


def _check_whole(path: Path, clip: vs.VideoNode, declared_s: float,
                 decoded_s: float) -> tuple[vs.VideoNode, int | None, str | None]:
    """For a file whose container promises more than its video decodes to: the clip to use (BestSource with one
    decoder thread where that reads more frames: threaded decoding loses the frames in flight at an error), the
    thread count it needs, and a note saying what is damaged and missing (None when the video stream is whole)."""
    packets, errors = read_video_packets(path)
    threads = None
    if packets > clip.num_frames:
        single = open_video(path, threads=1)
        if single.num_frames > clip.num_frames:
            decoded_s *= single.num_frames / clip.num_frames
            clip, threads = single, 1
    if not errors and threads is None:
        # the video is whole (field-coded video has two packets a frame); another stream makes the container longer
        return clip, None, None
    reason = f" (ffmpeg: {errors[-1]})" if errors else ""
    return clip, threads, (
        f"{path.name} is damaged{reason}: its container declares {declared_s:.2f} s, but its video decodes to "
        f"{decoded_s:.2f} s ({clip.num_frames} frames); about {declared_s - decoded_s:.2f} s are missing. "
        "The output holds the frames that decode, and its audio and subtitles are cut to their length")


def _stream_notes(path: Path, listing: StreamListing, clip: vs.VideoNode) -> list[str]:
    """What the output leaves out or changes because of how the file is made."""
    notes = []
    if listing.count("video") > 1:
        notes.append(f"{path.name} has {listing.count('video')} video streams; only the first is interpolated, "
                     "the others are left out")
    if listing.coded_size is not None:
        width, height = listing.coded_size
        for coded_w, coded_h in ((width, height), (height, width)):  # BestSource applies a 90-degree rotation
            lost_w, lost_h = coded_w - clip.width, coded_h - clip.height
            if (lost_w, lost_h) != (0, 0) and 0 <= lost_w <= 1 and 0 <= lost_h <= 1:
                notes.append(f"{path.name} is {coded_w}x{coded_h} with subsampled chroma, which VapourSynth holds "
                             f"only in even sizes: BestSource crops it to {clip.width}x{clip.height} "
                             f"({lost_w} column(s) on the right, {lost_h} row(s) at the bottom)")
                break
    return notes


def constant_rate_for(info: SourceInfo) -> Fraction:
    """The constant rate a variable-rate source is converted to: its average, snapped to a common rate."""
    average = info.fps if info.fps > 0 else Fraction(1000) / Fraction(info.shortest_ms).limit_denominator(1000)
    for rate in COMMON_RATES:
        if abs(average / rate - 1) < 0.01:
            return rate
    return average.limit_denominator(1001)


def colour_options(props: Mapping[str, Any]) -> dict[str, int | str]:
    """setparams options for a frame's `_Matrix`, `_Primaries`, `_Transfer` and range (unspecified left out).

    A filter rather than output options: ffmpeg's encoders take the colour description from the frames, and
    YUV4MPEG frames carry none.
    """
    options: dict[str, int | str] = {}
    # VapourSynth and ffmpeg share ITU-T H.273's numbers for these; 2 is "unspecified" in all three.
    for prop, option in (("_Matrix", "colorspace"), ("_Primaries", "color_primaries"), ("_Transfer", "color_trc")):
        value = props.get(prop)
        if isinstance(value, int) and value != 2 and (value > 0 or prop == "_Matrix"):
            options[option] = int(value)
    if "_Range" in props:  # VapourSynth R74+: 0 limited, 1 full
        options["range"] = "pc" if int(props["_Range"]) == 1 else "tv"
    elif "_ColorRange" in props:  # older: 0 full, 1 limited
        options["range"] = "pc" if int(props["_ColorRange"]) == 0 else "tv"
    return options


def pixel_format(clip_format: vs.VideoFormat) -> str:
    """ffmpeg's name for the YUV4MPEG pixel format of a YUV or GRAY clip (yuv420p, yuv444p10le, gray16le, ...)."""
    depth = "" if clip_format.bits_per_sample == 8 else f"{clip_format.bits_per_sample}le"
    if clip_format.color_family == vs.GRAY:
        return f"gray{depth}"
    chroma = {(1, 1): "420", (1, 0): "422", (0, 0): "444", (0, 1): "440", (2, 0): "411", (2, 2): "410"}
    return f"yuv{chroma[(clip_format.subsampling_w, clip_format.subsampling_h)]}p{depth}"


def read_video_packets(path: Path) -> tuple[int, list[str]]:
    """Packets of the first video stream of `path` as ffmpeg's demuxer reads them (nothing is decoded), and the
    errors it reported on the way (a truncated or damaged file)."""
    count = ffmpeg.output(ffmpeg.input(str(path))["v:0"], "-", c="copy", f="null")
    result = subprocess.run(ffmpeg_command(count, "-nostats", "-progress", "pipe:1"), capture_output=True,
                            text=True, check=False, errors="replace")
    frames = [line.removeprefix("frame=") for line in result.stdout.splitlines() if line.startswith("frame=")]
    # without the "[in#0/mov,mp4,... @ 0x55d...]" context that ffmpeg puts in front
    errors = [re.sub(r"^(\[[^]]*\]\s*)+", "", line.strip()) for line in result.stderr.splitlines() if line.strip()]
    if result.returncode != 0 or not frames:
        raise MediaError(f"ffmpeg cannot read {path.name}: {' / '.join(errors[-3:]) or 'no message'}")
    return int(frames[-1]), errors


def count_video_frames(path: Path) -> int:
    """Frames of the first video stream of `path`, counted by ffmpeg from its packets (nothing is decoded)."""
    return read_video_packets(path)[0]
