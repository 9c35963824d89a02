"""Where and how an output is written: the file or folder checked, the encoder, its tags and the companion streams
decided, before any frame is made."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import encoding, frames
from .companions import Companion, CompanionPlan, companion_plan
from .containers import (
    MILLISECOND_CONTAINERS,
    MILLISECOND_MAX_FPS,
    Frame,
    check_container,
    container_encoder,
    same_samples,
    trial,
)
from .errors import MediaError
from .ffmpeg_binary import encoder_pixel_formats
from .media import SourceInfo
from .planning import Plan
from .rate import fraction_text
from .script import GraphSpec
from .tags import VideoTags
from .timecode import Timecode


@dataclass(frozen=True)
class OutputSettings:
    """How an output file is written: the video encoder's options and tags, the companion streams."""

    video_options: dict[str, Any]
    tags: VideoTags  # what the frames do not carry: colour description, SAR, HDR10 metadata, start, padding
    companion: CompanionPlan  # the source's audio, subtitles, attachments, cover art, metadata, chapters, timecode
    rgb: bool = False  # the frames go to ffmpeg as RGB (lossless); otherwise an RGB source is converted to YUV

    def spec_for(self, spec: GraphSpec) -> GraphSpec:
        """The graph that makes the frames these settings encode."""
        return replace(spec, rgb_source=False) if self.rgb else spec


def output_settings(plan_: Plan, output: Path, *, codec: str | None = None, crf: int | None = None,
                    lossless: bool = False, overwrite: bool = False,
                    warn: Callable[[str], None] = print) -> OutputSettings:
    """Check that `output` can be written as asked and decide how: a MediaError before any frame is made."""
    check_output(output, plan_.spec.input, overwrite=overwrite)
    source = plan_.source
    if output.suffix.lower() in MILLISECOND_CONTAINERS and plan_.output_fps > MILLISECOND_MAX_FPS:
        raise MediaError(f"{output.name}: {float(plan_.output_fps):.2f} fps is too fast for Matroska and WebM, which "
                         f"store times in milliseconds (frames would share a timestamp); write .mp4 or .mov, "
                         f"or ask for at most {MILLISECOND_MAX_FPS} fps")
    options = encoding.video_options(output.suffix, codec, crf, lossless,
                                     deep=source.bits > 8 or source.high_dynamic_range)
    hdr = None
    if source.hdr is not None:
        hdr, options = encoding.hdr_tags(source.hdr, options)
    width = source.width * (2 if plan_.spec.montage else 1)
    frame = Frame(width, source.height, source.pixel_format, VideoTags(source.colour, source.sar, hdr))
    if codec is None and trial(output.suffix, options, frame).stored is None:
        fitting = container_encoder(output.suffix, frame)  # .gif, say: its own codec rather than an error
        if fitting is not None:
            options = encoding.video_options(output.suffix, fitting, crf, lossless)
    options = encoding.keep_profile(options, source.listing.video)
    rgb_format = _rgb_format(options["c:v"], source) if encoding.lossless_codec(options, lossless) else None
    piped = rgb_format or source.pixel_format
    stored_as = next((fmt for fmt in encoder_pixel_formats(options["c:v"]) if same_samples(fmt, piped)), None)
    if stored_as is not None:
        options["pix_fmt"] = stored_as  # else ffmpeg picks a format the encoder has, and we say which
    colour = dict(source.colour)
    if plan_.spec.rgb_source and rgb_format is None:
        colour |= {"colorspace": 1, "range": "tv"}  # the script converts RGB to limited-range BT.709 YUV
    tags = VideoTags(colour, source.sar, hdr, start_s=plan_.video_offset_s)
    frame = replace(frame, pix_fmt=piped, tags=tags)
    fit = check_container(output.suffix, options, frame)
    if not same_samples(fit.pixel_format, piped) or (source.rgb and rgb_format is None and lossless):
        _changed_samples(options["c:v"], source.source_format, fit.pixel_format, output.suffix, frame, lossless,
                         warn)
    if any(fit.pad):
        right, bottom = fit.pad
        warn(f"{options['c:v']} cannot store {width}x{source.height} {piped} frames: they are padded to "
             f"{width + right}x{source.height + bottom} ({right} column(s) on the right, {bottom} row(s) at the "
             "bottom, repeating the edge pixels)")
    companion = CompanionPlan([], {})
    if not plan_.spec.input.is_dir():
        cut = plan_.spec.start is not None or plan_.spec.end is not None or source.damaged
        companion = companion_plan(Companion(plan_.spec.input, source.listing, start_s=plan_.start_s,
                                             duration_s=plan_.video_offset_s + plan_.duration_s if cut else None),
                                   output.suffix, warn)
    companion = replace(companion, options=companion.options | _timecode(plan_, warn))
    return OutputSettings(options, replace(tags, pad=fit.pad), companion, rgb=rgb_format is not None)


def _changed_samples(encoder: str, source_format: str, stored: str, suffix: str, frame: Frame, lossless: bool,
                     warn: Callable[[str], None]) -> None:
    """The warning (with --lossless: the error) for an encoder that changes the samples, naming the source's own
    pixel format and the stored one, and what keeps them."""
    change = f"{encoder} stores the {source_format} frames as {stored}"
    into = "" if trial(suffix, {"c:v": "ffv1"}, frame).stored is not None else " into a .mkv file"
    if lossless:
        raise MediaError(f"--lossless: {change}, which is not lossless; choose --codec ffv1{into}")
    warn(f"{change}, not as they are (--codec ffv1 --lossless{into} keeps them)")


def _rgb_format(encoder: str, source: SourceInfo) -> str | None:
    """The planar RGB format an RGB source goes to `encoder` in, when the encoder stores its samples as they are."""
    if not source.rgb:
        return None
    planar = f"gbrp{'' if source.bits == 8 else f'{source.bits}le'}"
    return planar if any(same_samples(fmt, planar) for fmt in encoder_pixel_formats(encoder)) else None


def _timecode(plan_: Plan, warn: Callable[[str], None]) -> dict[str, str]:
    """The output option that carries the source's timecode to the first rendered frame at the output's rate."""
    label = plan_.source.listing.timecode
    start = None if label is None else Timecode.parse(label, plan_.source.fps)
    if start is None:
        return {}
    carried, exact = start.carried(plan_.first_frame, plan_.output_fps)
    if not exact:
        warn(f"the timecode of {plan_.spec.input.name} at its first rendered frame falls between two frames at "
             f"{fraction_text(plan_.output_fps)} fps: the output's starts at {carried.label()}, a part of a frame "
             "earlier")
    return {"timecode": carried.label()}


def check_output(output: Path, *inputs: Path, overwrite: bool = False) -> None:
    """A MediaError if `output` would overwrite an input or an existing file unasked, or cannot be written."""
    for source in inputs:
        same = output.resolve() == source.resolve() or (
            output.exists() and source.exists() and os.path.samefile(output, source))
        if same:
            raise MediaError(f"{output}: that is the input; choose another output name")
    if output.exists() and not output.is_dir() and not overwrite:
        raise MediaError(f"{output}: exists; pass --overwrite to replace it")
    if output.is_dir():
        raise MediaError(f"{output}: is a folder")
    _check_parent(output)


def _check_parent(output: Path) -> None:
    """A MediaError unless the folder that `output` (a file or a folder) goes in exists and can be written: neither
    is made with its parents."""
    parent = output.resolve().parent
    if not parent.is_dir():
        what = "is not a folder" if parent.exists() else "does not exist"
        raise MediaError(f"{output}: the folder {parent} {what}")
    if not os.access(parent, os.W_OK):
        raise MediaError(f"{output}: cannot write in {parent}")


def check_folder_output(out_dir: Path, *inputs: Path, overwrite: bool = False) -> None:
    """A MediaError unless `out_dir` can take numbered frames: a new or empty folder, or (with --overwrite) one
    whose images may be replaced."""
    for source in inputs:
        if out_dir.resolve() == source.resolve():
            raise MediaError(f"{out_dir}: that is the input; choose another folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise MediaError(f"{out_dir}: exists and is not a folder")
    if not out_dir.exists():
        _check_parent(out_dir)
    if out_dir.is_dir():
        if not os.access(out_dir, os.W_OK):
            raise MediaError(f"{out_dir}: cannot write in it")
        images = frames.image_files(out_dir)
        if images and not overwrite:
            raise MediaError(f"{out_dir}: holds {len(images)} images (from an earlier run?); pass --overwrite to "
                             "replace them, or choose an empty folder")
