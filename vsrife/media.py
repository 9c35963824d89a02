"""Media input for the command line: a source's video through BestSource and what the command line must know about
it (timing, colour, display geometry, damage), with ffmpeg's listing of its streams. Encoding is in encoding.py."""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import vapoursynth as vs

from .damage import DAMAGE_TOLERANCE_S, Damage, read_video_packets
from .errors import MediaError
from .hdr import DYNAMIC_HDR_PROPS, HDR_TRANSFERS, HdrMetadata, hdr_metadata
from .listing import StreamListing, list_streams
from .timing import Timing, analyse


@dataclass(frozen=True)
class SourceInfo:
    """What the command line needs to know about an input video before building its graph."""

    path: Path
    timing: Timing  # the rate the graph receives its frames at, and why it may differ from the file's
    num_frames: int  # as BestSource reads them, before any conversion to a constant rate
    rgb: bool  # YUV4MPEG cannot carry it: the graph converts the result to YUV unless it goes out as raw RGB
    colour: dict[str, int | str]  # options of ffmpeg's setparams filter that keep the source's colour description
    width: int = 0
    height: int = 0
    bits: int = 8
    sar: Fraction | None = None  # pixel aspect ratio of the frames as shown, when it is not 1:1
    field_based: int = 0  # _FieldBased: 0 progressive, 1 bottom field first, 2 top field first
    hdr: HdrMetadata | None = None
    dynamic_hdr: tuple[str, ...] = ()  # descriptions of per-frame metadata that is lost
    alpha: bool = False
    pixel_format: str = "yuv420p"  # of the frames the graph pipes as YUV4MPEG (RGB sources become YUV 4:4:4)
    source_format: str = "yuv420p"  # the file's own pixel format, as ffmpeg names it (messages say this one)
    decoder_threads: int | None = None  # 1: BestSource reads more frames of this (damaged) file single-threaded
    damaged: bool = False  # packets do not decode, or the video decodes to less than the container declares
    video_start_s: float = 0.0  # where the first frame is shown, after the file's start (its earliest stream)
    listing: StreamListing = field(default_factory=StreamListing)  # the file's streams and tags (none: images)
    notes: tuple[str, ...] = ()  # what the user must be told about the source (damage, cropping, extra streams)

    @property
    def fps(self) -> Fraction:
        return self.timing.rate

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
        raise MediaError(f"{path}: {_unreadable(path, str(exc).removeprefix('VideoSource: '))}") from None


def _unreadable(path: Path, reason: str) -> str:
    """Why BestSource cannot read `path`, in the file's terms where ffmpeg's listing tells them."""
    listing = list_streams(path)
    if listing.problem and _mp4_boxes(path):
        return f"{listing.problem}; nothing in it can be read"
    if listing.opened and not listing.streams:
        return "holds no streams at all (was nothing recorded into it?)"
    if listing.kinds and not listing.count("video"):
        kinds = ", ".join(sorted(set(listing.kinds) - {"video"}) or ["cover art"])
        return f"has no video stream (only {kinds})"
    if listing.video is not None and read_video_packets(path).count == 0:
        return "its video stream holds no frames"
    return f"not a video BestSource can read ({reason})"


def _mp4_boxes(path: Path) -> bool:
    """The file starts as an MP4 (or QuickTime) file does: with one of the boxes that come before the index."""
    with path.open("rb") as file:
        return file.read(8)[4:] in (b"ftyp", b"mdat", b"wide", b"free", b"skip")


def _read(path: Path, **options: Any) -> tuple[vs.VideoNode, list[float]]:
    """The clip and its frames' timestamps in ms."""
    with tempfile.TemporaryDirectory(prefix="vsrife-") as scratch:
        timecodes = Path(scratch) / "timecodes.txt"
        clip = open_video(path, timecodes=str(timecodes), **options)
        return clip, [float(line) for line in timecodes.read_text().splitlines()[1:] if line.strip()]


def probe(path: Path) -> SourceInfo:
    """Rate, length, constancy of the rate, colour, shape and metadata of `path`'s video track, and what is wrong
    with the file (damage, gaps, cropping, streams left out) as notes for the user."""
    listing = list_streams(path)
    clip, stamps = _read(path)
    reported = Fraction(clip.fps_num, clip.fps_den) if clip.fps_num else Fraction(0)
    timing = analyse(stamps, reported)
    start_s = listing.start_s
    notes: list[str] = []
    threads, damage = None, None
    decoded_s = (timing.start_ms + _span_ms(stamps, timing)) / 1000 - start_s
    truncated = listing.declared_s is not None and listing.declared_s - decoded_s > DAMAGE_TOLERANCE_S
    if truncated or timing.gaps or timing.variable:
        packets = read_video_packets(path)
        if packets.count > clip.num_frames:
            single, single_stamps = _read(path, threads=1)
            if single.num_frames > clip.num_frames:  # threaded decoding loses the frames in flight at an error
                clip, stamps, threads = single, single_stamps, 1
        undecoded = sum(packets.inside(a, b) for a, b in itertools.pairwise(stamps))
        if packets.errors or threads is not None or undecoded:
            timing = analyse(stamps, reported, damaged=True)
            decoded_s = (timing.start_ms + _span_ms(stamps, timing)) / 1000 - start_s
            damage = Damage(packets.errors[-1] if packets.errors else None, listing.declared_s, decoded_s,
                            clip.num_frames)
            notes.append(damage.note(path.name, timing))
    if timing.gaps and damage is None:
        notes.append(f"{path.name}'s timestamps skip {timing.describe_missing()} of its constant {timing.rate_text()} "
                     f"fps ({timing.describe_gaps()}; an edit list, or frames dropped when it was recorded): each "
                     f"gap repeats the frame before it, and the rate stays {timing.rate_text()} fps")
    notes += _stream_notes(path, listing, clip)
    props = clip.get_frame(0).props
    middle = clip.get_frame(clip.num_frames // 2).props
    rgb = clip.format.color_family == vs.RGB
    return SourceInfo(path=path, timing=timing, num_frames=clip.num_frames, rgb=rgb,
                      colour=colour_options(props), width=clip.width, height=clip.height,
                      bits=clip.format.bits_per_sample, sar=display_sar(listing, props),
                      field_based=max(int(props.get("_FieldBased", 0)), int(middle.get("_FieldBased", 0))),
                      hdr=hdr_metadata(props),
                      dynamic_hdr=tuple(name for prop, name in DYNAMIC_HDR_PROPS.items()
                                        if prop in props or prop in middle),
                      alpha="_Alpha" in props, decoder_threads=threads, damaged=damage is not None,
                      pixel_format=piped_format(clip.format),
                      source_format=(listing.video.pixel_format if listing.video else None) or
                      piped_format(clip.format),
                      video_start_s=max(0.0, round(timing.start_ms / 1000 - start_s, 6)), listing=listing,
                      notes=tuple(notes))


def _span_ms(stamps: list[float], timing: Timing) -> float:
    """From the first frame's start to the last frame's end."""
    return stamps[-1] - stamps[0] + 1000 / float(timing.rate)


def pixel_aspect(props: Mapping[str, Any]) -> Fraction | None:
    """A frame's sample aspect ratio (_SARNum/_SARDen) when it is known and not square."""
    sar = Fraction(int(props.get("_SARNum", 0)), max(int(props.get("_SARDen", 1)), 1))
    return sar if sar > 0 and sar != 1 else None


def quarter_turn(listing: StreamListing) -> bool:
    """The video's display matrix turns it by 90 or 270 degrees: BestSource swaps its width and height."""
    rotation = None if listing.video is None else listing.video.rotation
    return rotation is not None and round(rotation / 90) % 2 == 1


def display_sar(listing: StreamListing, props: Mapping[str, Any]) -> Fraction | None:
    """The pixel aspect ratio of the frames as BestSource gives them: the container's where it states one (as
    ffmpeg itself decides), else the bitstream's; inverted when the display matrix turns the picture a quarter."""
    stated = None if listing.video is None else listing.video.container_sar
    sar = stated or pixel_aspect(props) or Fraction(1)
    if quarter_turn(listing):
        sar = 1 / sar
    return sar if sar != 1 else None


def _stream_notes(path: Path, listing: StreamListing, clip: vs.VideoNode) -> list[str]:
    """What the output leaves out or changes because of how the file is made."""
    notes = []
    if listing.count("video") > 1:
        notes.append(f"{path.name} has {listing.count('video')} video streams; only the first is interpolated, "
                     "the others are left out")
    if listing.coded_size is not None:
        width, height = listing.coded_size
        turned = quarter_turn(listing)
        kept_w, kept_h = (clip.height, clip.width) if turned else (clip.width, clip.height)
        lost_w, lost_h = width - kept_w, height - kept_h
        if (lost_w, lost_h) != (0, 0) and 0 <= lost_w <= 1 and 0 <= lost_h <= 1:
            notes.append(f"{path.name} is {width}x{height} with subsampled chroma, which VapourSynth holds "
                         f"only in even sizes: BestSource crops it to {kept_w}x{kept_h} ({lost_w} column(s) on "
                         f"the right, {lost_h} row(s) at the bottom)"
                         + (f", then turns it to {clip.width}x{clip.height} as its display matrix says"
                            if turned else ""))
    return notes


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


def piped_format(clip_format: vs.VideoFormat) -> str:
    """The YUV4MPEG pixel format a clip of this format is piped in: its own, YUV 4:4:4 for RGB."""
    if clip_format.color_family == vs.RGB:
        return pixel_format(clip_format.replace(color_family=vs.YUV, subsampling_w=0, subsampling_h=0))
    return pixel_format(clip_format)
