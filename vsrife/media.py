"""Media I/O for the command line: reading a source's timing and colour, and encoding a clip through ffmpeg.

Decoding is BestSource's (`core.bs.VideoSource`); encoding is ffmpeg's, fed frames as YUV4MPEG through a pipe, its
command line built with ffmpeg-python. The output is written under a temporary name beside the target and renamed
only when ffmpeg has finished it, so an interrupted or failed run leaves nothing under the target's name.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache
from pathlib import Path
from types import FrameType
from typing import IO, Any

import ffmpeg
import vapoursynth as vs

from .errors import VfiError
from .ffmpeg_binary import find_ffmpeg

# Frame-time jitter up to this much (containers round timestamps to 1 ms) still counts as a constant rate.
TIMESTAMP_TOLERANCE_MS = 1.5
# A variable-rate source is converted to its average rate, snapped to one of these when within 1 % of it.
COMMON_RATES = tuple(Fraction(n, d) for n, d in ((24000, 1001), (24, 1), (25, 1), (30000, 1001), (30, 1),
                                                  (48, 1), (50, 1), (60000, 1001), (60, 1), (120, 1)))
# Seconds that ffmpeg gets to finish or stop before it is killed.
FFMPEG_STOP_SECONDS = 5.0


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


# ------------------------------------------------------------------------------------------------ codecs


@dataclass(frozen=True)
class Codec:
    """How to ask one ffmpeg encoder for a quality level or for lossless output."""

    crf: int | None  # default constant-quality level; None: the encoder has no crf
    lossless: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


CODECS: dict[str, Codec] = {
    "libx264": Codec(crf=16, lossless={"qp": 0}, extra={"preset": "medium"}),
    "libx265": Codec(crf=18, lossless={"x265-params": "lossless=1"}, extra={"preset": "medium"}),
    "libvpx-vp9": Codec(crf=30, lossless={"lossless": 1},
                        extra={"b:v": 0, "row-mt": 1, "deadline": "good", "cpu-used": 4}),
    "libsvtav1": Codec(crf=30, lossless={"svtav1-params": "lossless=1"}),
    "ffv1": Codec(crf=None, lossless={}, extra={"level": 3}),
}
DEFAULT_CODECS = {".webm": "libvpx-vp9"}
DEFAULT_CODEC = "libx264"
# Said when nothing is: ffmpeg then picks the container's own default encoder for the stream.
CONTAINER_DEFAULT: dict[str, Any] = {}
# Text subtitles for containers that have no default subtitle encoder in ffmpeg.
SUBTITLE_CODECS = {".mp4": "mov_text", ".m4v": "mov_text", ".mov": "mov_text", ".webm": "webvtt"}


# The default for sources of more than 8 bits or with an HDR transfer: HEVC Main 10 / Main 12 / RExt, what HDR10
# players expect (H.264 High 10 keeps the bits but few players decode it).
DEFAULT_DEEP_CODEC = "libx265"


def video_options(suffix: str, codec: str | None, crf: int | None, lossless: bool,
                  deep: bool = False) -> dict[str, Any]:
    """ffmpeg output options for the video stream of a file named *suffix (`deep`: a source of more than 8 bits
    or an HDR one)."""
    name = codec or DEFAULT_CODECS.get(suffix.lower(), DEFAULT_DEEP_CODEC if deep else DEFAULT_CODEC)
    if name not in video_encoders():
        raise MediaError(f"--codec {name}: this ffmpeg has no such video encoder "
                         f"(`{ffmpeg_executable()} -encoders` lists them)")
    known = CODECS.get(name)
    options: dict[str, Any] = {"c:v": name, **(known.extra if known else {})}
    if lossless:
        if known is None:
            raise MediaError(f"--lossless: not known for {name}; use one of {', '.join(CODECS)}")
        if crf is not None:
            raise MediaError("--crf and --lossless exclude each other")
        return options | known.lossless
    if crf is not None:
        if known is not None and known.crf is None:
            raise MediaError(f"--crf: {name} has no quality level (it is lossless)")
        options["crf"] = crf
    elif known is not None and known.crf is not None:
        options["crf"] = known.crf
    return options


def pixel_format(clip_format: vs.VideoFormat) -> str:
    """ffmpeg's name for the YUV4MPEG pixel format of a YUV or GRAY clip (yuv420p, yuv444p10le, gray16le, ...)."""
    depth = "" if clip_format.bits_per_sample == 8 else f"{clip_format.bits_per_sample}le"
    if clip_format.color_family == vs.GRAY:
        return f"gray{depth}"
    chroma = {(1, 1): "420", (1, 0): "422", (0, 0): "444", (0, 1): "440", (2, 0): "411", (2, 2): "410"}
    return f"yuv{chroma[(clip_format.subsampling_w, clip_format.subsampling_h)]}p{depth}"


@dataclass(frozen=True)
class VideoTags:
    """What YUV4MPEG frames do not carry and ffmpeg is told beside them: the colour description, the pixel aspect
    ratio and HDR10 static metadata; and padding to a size the encoder takes."""

    colour: dict[str, int | str] = field(default_factory=dict)  # setparams options (colour_options)
    sar: Fraction | None = None
    hdr: HdrMetadata | None = None  # given to ffmpeg as input options: the encoder and the container take it
    pad: tuple[int, int] = (0, 0)  # columns on the right, rows at the bottom, repeating the edge pixels

    def input_options(self) -> dict[str, str]:
        if self.hdr is None:
            return {}
        options = {"mastering_display": self.hdr.mastering_display, "content_light": self.hdr.content_light}
        return {key: value for key, value in options.items() if value}

    def filtered(self, video: Any) -> Any:
        """The ffmpeg-python video stream with the tags applied (filters: encoders read these from the frames)."""
        if self.colour:
            video = video.filter("setparams", **self.colour)
        if self.sar is not None:
            video = video.filter("setsar", sar=f"{self.sar.numerator}/{self.sar.denominator}",
                                 max=max(self.sar.numerator, self.sar.denominator, 100))
        if any(self.pad):
            right, bottom = self.pad
            video = video.filter("pad", f"iw+{right}", f"ih+{bottom}").filter(
                "fillborders", right=right, bottom=bottom, mode="smear")
        return video


def hdr_tags(hdr: HdrMetadata, options: dict[str, Any]) -> tuple[HdrMetadata | None, dict[str, Any]]:
    """How HDR10 metadata reaches the output: as ffmpeg input options (encoder and container) where this ffmpeg has
    them, else as x265 parameters (bitstream only); a MediaError where neither can carry it."""
    if "mastering_display" in ffmpeg_input_options():
        return hdr, options
    if options.get("c:v") == "libx265":
        params = [options["x265-params"]] if options.get("x265-params") else []
        params += [f"master-display={hdr.mastering_display}"] if hdr.mastering_display else []
        params += [f"max-cll={hdr.content_light}"] if hdr.content_light else []
        return None, options | {"x265-params": ":".join(params)}
    raise MediaError(f"this ffmpeg ({ffmpeg_executable()}) cannot give {options.get('c:v')} the source's HDR10 "
                     f"metadata ({hdr.describe()}); use --codec libx265, or an ffmpeg whose `ffmpeg -h full` "
                     "lists -mastering_display (imageio-ffmpeg's 9.0 does)")


@dataclass(frozen=True)
class EncoderFit:
    """How the encoder stores the frames: its pixel format, and the padding it needs."""

    pixel_format: str
    pad: tuple[int, int] = (0, 0)


def check_container(suffix: str, options: Mapping[str, Any], *, width: int = 64, height: int = 64,
                    pix_fmt: str = "yuv420p", tags: VideoTags | None = None) -> EncoderFit:
    """Whether ffmpeg can write one frame of this size and pixel format with these options into a *suffix file,
    and how it stores it; a MediaError if it cannot (padding an odd size to an even one is tried first)."""
    if not suffix:
        raise MediaError("the output name needs an extension (.mp4, .mkv, .webm, ...): it picks the container")
    tags = tags or VideoTags()
    failure = ""
    odd = (width % 2, height % 2)
    for pad in [(0, 0), odd] if any(odd) else [(0, 0)]:
        with tempfile.TemporaryDirectory(prefix="vsrife-") as scratch:
            trial_path = Path(scratch) / f"trial{suffix}"
            frame = ffmpeg.input(f"color=size={width}x{height}:duration=0.04", f="lavfi", **tags.input_options())
            video = VideoTags(tags.colour, tags.sar, None, pad).filtered(frame.video.filter("format", pix_fmt))
            trial = ffmpeg.output(video, str(trial_path), frames=1, **options)
            result = subprocess.run(ffmpeg_command(trial), capture_output=True, text=True, check=False)
            if result.returncode == 0:
                return EncoderFit(_stored_pixel_format(trial_path) or pix_fmt, pad)
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        failure = failure or (lines[-1] if lines else "no message")
    raise MediaError(f"ffmpeg cannot write {options.get('c:v')} video of {width}x{height} {pix_fmt} into a "
                     f"{suffix} file ({failure})")


def _stored_pixel_format(path: Path) -> str | None:
    dump = subprocess.run([ffmpeg_executable(), "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True,
                          text=True, check=False, errors="replace").stderr
    found = re.search(r"Video: [^,]*, (\w+)", dump)
    return found.group(1) if found else None


# Containers that store times in milliseconds: above this rate, frames would share a timestamp.
MILLISECOND_CONTAINERS = (".mkv", ".webm", ".mka", ".mk3d")
MILLISECOND_MAX_FPS = 1000


# ------------------------------------------------------------------------------------------------ encoding


@dataclass(frozen=True)
class Companion:
    """The input file whose audio and subtitles go into the output, cut to the rendered range."""

    path: Path
    start_s: float = 0.0
    duration_s: float | None = None

    def input(self) -> Any:
        options: dict[str, Any] = {"ss": f"{self.start_s:.6f}"} if self.start_s else {}
        if self.duration_s is not None:
            options["t"] = f"{self.duration_s:.6f}"
        return ffmpeg.input(str(self.path), **options)


def stream_plans(suffix: str) -> dict[str, tuple[dict[str, Any] | None, ...]]:
    """Per stream kind, the codec options to try in order; the first the container accepts wins, None drops them."""
    subtitles = SUBTITLE_CODECS.get(suffix.lower())
    return {
        "a": ({"c:a": "copy"}, CONTAINER_DEFAULT),
        "s": ({"c:s": "copy"}, {"c:s": subtitles} if subtitles else CONTAINER_DEFAULT, None),
    }


def companion_plan(companion: Companion, suffix: str, warn: Callable[[str], None]) -> tuple[list[Any], dict[str, Any]]:
    """The audio/subtitle streams to map from the companion and their codec options for a *suffix container.

    Only kinds the companion has are planned. ffmpeg itself is asked, with a fraction of a second of each kind,
    whether the container takes the stream as it is; if not, the container's default encoder is tried, and
    subtitles that fit neither are left out. Matroska outputs also get the attachments (fonts of ASS subtitles);
    every output gets the companion's global metadata (title, ...). With a cut end, subtitle cues are cut there too.
    """
    listing = list_streams(companion.path)
    source = companion.input()
    streams: list[Any] = []
    options: dict[str, Any] = {}
    names = {"a": "audio", "s": "subtitle"}
    for kind, plans in stream_plans(suffix).items():
        if names[kind] not in listing.kinds:
            continue
        for plan in plans:
            if plan is None:
                warn(f"the subtitles of {companion.path.name} do not fit a {suffix} file; they are left out")
                break
            if _container_accepts(companion, kind, plan, suffix):
                streams.append(source[f"{kind}?"])
                options |= plan
                if "copy" not in plan.values():
                    what = "audio" if kind == "a" else "subtitles"
                    warn(f"the {what} of {companion.path.name} cannot be copied into a {suffix} file; converting")
                break
        else:
            raise MediaError(f"the audio of {companion.path.name} cannot be stored in a {suffix} file")
    if "attachment" in listing.kinds:
        if suffix.lower() in MILLISECOND_CONTAINERS:
            streams.append(source["t?"])
            options["c:t"] = "copy"
        else:
            warn(f"the attachments of {companion.path.name} (fonts, images) fit only a Matroska file; "
                 f"they are left out of the {suffix} file")
    if streams:
        options["map_metadata"] = "1"  # input 0 is the pipe of frames
    if companion.duration_s is not None and streams:
        options["t"] = f"{companion.duration_s:.6f}"  # drops what starts after the cut
        if "subtitle" in listing.kinds:
            # and ends the cues that start before it there: ffmpeg keeps their full duration
            options["bsf:s"] = f"setts=duration=min(DURATION\\,max(0\\,{companion.duration_s:.6f}/TB-PTS))"
    return streams, options


def _container_accepts(companion: Companion, kind: str, plan: Mapping[str, Any], suffix: str) -> bool:
    with tempfile.TemporaryDirectory(prefix="vsrife-") as scratch:
        trial = ffmpeg.output(companion.input()[f"{kind}?"], str(Path(scratch) / f"trial{suffix}"), t=0.2, **plan)
        return subprocess.run(ffmpeg_command(trial), capture_output=True, check=False).returncode == 0


def partial_path(output: Path) -> Path:
    """The temporary name beside `output` that a file is written under until it is complete."""
    return output.with_name(f".{output.stem}.partial{output.suffix}")


class Interrupted(KeyboardInterrupt):
    """The user stopped the run (SIGINT or SIGTERM; `signum` says which); a KeyboardInterrupt, so nothing eats it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into Interrupted, raised at the next Python step (at the latest the next frame)."""
    def handler(signum: int, _frame: FrameType | None) -> None:
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def encode(node: vs.VideoNode, output: Path, *, y4m: bool = True, input_options: Mapping[str, Any] | None = None,
           streams: Sequence[Any] = (), output_options: Mapping[str, Any] | None = None,
           tags: VideoTags | None = None, progress: Callable[[int, int], None] | None = None,
           atomic: bool = True) -> None:
    """Encode `node` into `output` with ffmpeg, atomically: ffmpeg writes a partial file that is renamed at the end.

    `node` goes to ffmpeg's stdin as YUV4MPEG (or raw planes with `y4m=False`, described by `input_options`);
    `streams` are further ffmpeg-python streams to map (audio, subtitles); `tags` carry what the frames do not
    (colour description, pixel aspect ratio, HDR10 metadata, padding). `atomic=False` writes `output` itself
    (an image pattern, say, inside a folder that the caller renames).
    """
    partial = partial_path(output) if atomic else output
    tags = tags or VideoTags()
    piped = {"format": "yuv4mpegpipe"} if y4m else dict(input_options or {})
    video = tags.filtered(ffmpeg.input("pipe:", **piped, **tags.input_options()).video)
    command = ffmpeg_command(ffmpeg.output(video, *streams, str(partial), **dict(output_options or {})), "-nostats")
    with tempfile.TemporaryFile() as log:
        # Its own session: a Ctrl-C in the terminal reaches only us, and we stop ffmpeg in order.
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log,
                                   start_new_session=True)
        try:
            with stop_on_signals():
                written = _write_frames(node, process, y4m, progress)
                if process.wait() != 0 or not written:
                    raise MediaError(f"ffmpeg failed: {_last_lines(log)}")
            if atomic:
                os.replace(partial, output)
        except BaseException:
            _stop(process)
            if atomic:
                partial.unlink(missing_ok=True)
            raise


def _write_frames(node: vs.VideoNode, process: subprocess.Popen[bytes], y4m: bool,
                  progress: Callable[[int, int], None] | None) -> bool:
    """Send every frame; False when ffmpeg stopped reading (its own message then says why)."""
    stdin: IO[bytes] = process.stdin  # type: ignore[assignment]
    try:
        node.output(stdin, y4m=y4m, progress_update=progress)
        stdin.close()
    except (BrokenPipeError, vs.Error) as exc:
        if isinstance(exc, BrokenPipeError) or process.poll() is not None:
            return False
        raise
    return True


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.stdin is not None and not process.stdin.closed:
        try:
            process.stdin.close()
        except BrokenPipeError:
            pass
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(FFMPEG_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _last_lines(log: IO[bytes], count: int = 3) -> str:
    log.seek(0)
    lines = [line.strip() for line in log.read().decode(errors="replace").splitlines() if line.strip()]
    return " / ".join(lines[-count:]) or "no message"


def run_into(stream: Any, target: Path) -> None:
    """Run a finished ffmpeg-python graph that writes partial_path(target), then rename it to `target`."""
    partial = partial_path(target)
    try:
        result = subprocess.run(ffmpeg_command(stream), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            raise MediaError(f"ffmpeg failed writing {target.name}: {' / '.join(lines[-3:]) or 'no message'}")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


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


def concat(parts: Sequence[Path], output: Path, *, streams: Sequence[Any] = (),
           output_options: Mapping[str, Any] | None = None) -> None:
    """Join video files of one encoding in order, without re-encoding, adding `streams`; atomically, as encode."""
    with tempfile.TemporaryDirectory(prefix="vsrife-") as scratch:
        listing = Path(scratch) / "parts.txt"
        # The concat demuxer's quoting: a quote inside a quoted name is written '\''
        listing.write_text("".join("file '{}'\n".format(str(part.resolve()).replace("'", "'\\''"))
                                   for part in parts))
        video = ffmpeg.input(str(listing), f="concat", safe=0)["v:0"]
        options = {**dict(output_options or {}), "c:v": "copy"}
        run_into(ffmpeg.output(video, *streams, str(partial_path(output)), **options), output)
