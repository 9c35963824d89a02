"""Where and how an output is written: the file or folder checked, the encoder, its tags and the companion streams
decided, before any frame is made."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import encoding, frames
from .media import MediaError
from .planning import Plan


@dataclass(frozen=True)
class OutputSettings:
    """How an output file is written: the video encoder's options and tags, the companion streams."""

    video_options: dict[str, Any]
    tags: encoding.VideoTags  # what the y4m frames do not carry: colour description, SAR, HDR10 metadata, padding
    streams: list[Any]  # the source's audio and subtitles, cut to the rendered range
    stream_options: dict[str, Any]


def output_settings(plan_: Plan, output: Path, *, codec: str | None = None, crf: int | None = None,
                    lossless: bool = False, overwrite: bool = False,
                    warn: Callable[[str], None] = print) -> OutputSettings:
    """Check that `output` can be written as asked and decide how: a MediaError before any frame is made."""
    check_output(output, plan_.spec.input, overwrite=overwrite)
    source = plan_.source
    suffix = output.suffix.lower()
    if suffix in encoding.MILLISECOND_CONTAINERS and plan_.output_fps > encoding.MILLISECOND_MAX_FPS:
        raise MediaError(f"{output.name}: {float(plan_.output_fps):.2f} fps is too fast for Matroska and WebM, which "
                         f"store times in milliseconds (frames would share a timestamp); write .mp4 or .mov, "
                         f"or ask for at most {encoding.MILLISECOND_MAX_FPS} fps")
    options = encoding.video_options(output.suffix, codec, crf, lossless,
                                     deep=source.bits > 8 or source.high_dynamic_range)
    hdr = None
    if source.hdr is not None:
        hdr, options = encoding.hdr_tags(source.hdr, options)
    colour = dict(source.colour)
    if plan_.spec.rgb_source:
        colour |= {"colorspace": 1, "range": "tv"}  # the script converts RGB to limited-range BT.709 YUV
    tags = encoding.VideoTags(colour, source.sar, hdr)
    width = source.width * (2 if plan_.spec.montage else 1)
    fit = encoding.check_container(output.suffix, options, width=width, height=source.height,
                                   pix_fmt=source.pixel_format, tags=tags)
    name = options["c:v"]
    if fit.pixel_format.replace("yuvj", "yuv") != source.pixel_format:  # yuvj: the same, tagged full range
        change = f"{name} stores the {source.pixel_format} frames as {fit.pixel_format}"
        if lossless:
            raise MediaError(f"--lossless: {change}, which is not lossless; choose --codec ffv1")
        warn(f"{change} (fewer bits or less chroma); --codec ffv1 --lossless keeps them as they are")
    if any(fit.pad):
        right, bottom = fit.pad
        warn(f"{name} cannot store {width}x{source.height} {source.pixel_format} frames: they are padded to "
             f"{width + right}x{source.height + bottom} ({right} column(s) on the right, {bottom} row(s) at the "
             "bottom, repeating the edge pixels)")
    cut = plan_.spec.start is not None or plan_.spec.end is not None or source.damaged
    companion = encoding.Companion(plan_.spec.input, start_s=plan_.start_s,
                                   duration_s=plan_.duration_s if cut else None)
    streams: list[Any] = []
    stream_options: dict[str, Any] = {}
    if not plan_.spec.input.is_dir():
        streams, stream_options = encoding.companion_plan(companion, output.suffix, warn)
    return OutputSettings(options, replace(tags, pad=fit.pad), streams, stream_options)


def check_output(output: Path, *inputs: Path, overwrite: bool = False) -> None:
    """A MediaError if `output` would overwrite an input or an existing file unasked, or cannot be written."""
    for source in inputs:
        same = output.resolve() == source.resolve() or (
            output.exists() and source.exists() and os.path.samefile(output, source))
        if same:
            raise MediaError(f"{output}: that is the input; choose another output name")
    if output.exists() and not output.is_dir() and not overwrite:
        raise MediaError(f"{output}: exists; pass --overwrite to replace it")
    parent = output.resolve().parent
    if not parent.is_dir():
        raise MediaError(f"{output}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise MediaError(f"{output}: cannot write in {parent}")
    if output.is_dir():
        raise MediaError(f"{output}: is a folder")


def check_folder_output(out_dir: Path, *inputs: Path, overwrite: bool = False) -> None:
    """A MediaError unless `out_dir` can take numbered frames: a new or empty folder, or (with --overwrite) one
    whose images may be replaced."""
    for source in inputs:
        if out_dir.resolve() == source.resolve():
            raise MediaError(f"{out_dir}: that is the input; choose another folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise MediaError(f"{out_dir}: exists and is not a folder")
    if out_dir.is_dir():
        if not os.access(out_dir, os.W_OK):
            raise MediaError(f"{out_dir}: cannot write in it")
        images = frames.image_files(out_dir)
        if images and not overwrite:
            raise MediaError(f"{out_dir}: holds {len(images)} images (from an earlier run?); pass --overwrite to "
                             "replace them, or choose an empty folder")
