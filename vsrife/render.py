"""`python -m vsrife interpolate`'s run: a planned graph built, its frames made and encoded into a video file or
written as numbered PNGs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import vapoursynth as vs

from . import encoding
from .errors import MediaError
from .ffmpeg_binary import ffmpeg_input_options
from .output_settings import check_folder_output, output_settings
from .planning import Plan
from .png_frames import png_clip, write_png_frames
from .progress import progress_bar
from .script import GraphSpec, run_script, script_text
from .tags import VideoTags
from .threads import pin_threads


def build(spec: GraphSpec) -> vs.VideoNode:
    """The output clip of the spec's script; a MediaError carrying the filter's own message on bad arguments."""
    try:
        return run_script(script_text(spec), f"<{spec.input.name}>")
    except vs.Error as exc:
        raise MediaError(str(exc)) from None


def interpolate(plan_: Plan, output: Path, *, threads: int | None = None, codec: str | None = None,
                crf: int | None = None, lossless: bool = False, overwrite: bool = False, progress: bool = True,
                warn: Callable[[str], None] = print) -> int:
    """Render the plan into `output` with the source's audio and subtitles, with `threads` torch threads (None:
    torch's default); returns the number of frames written. A folder of PNGs is interpolate_to_folder's."""
    settings = output_settings(plan_, output, codec=codec, crf=crf, lossless=lossless, overwrite=overwrite,
                               warn=warn)
    pin_threads(threads)
    clip = build(settings.spec_for(plan_.spec))
    with progress_bar(clip.num_frames, progress) as update, settings.companion.file_options() as file_options:
        encoding.encode(clip, output, streams=settings.companion.streams,
                        output_options=settings.video_options | file_options, tags=settings.tags, progress=update)
    return clip.num_frames


def interpolate_to_folder(plan_: Plan, out_dir: Path, *, threads: int | None = None, overwrite: bool = False,
                          progress: bool = True, warn: Callable[[str], None] = print) -> int:
    """Render the plan as numbered PNGs in `out_dir` (8-bit sources give 8-bit PNGs, deeper ones 16-bit), with
    `threads` torch threads (None: torch's default)."""
    check_folder_output(out_dir, plan_.spec.input, overwrite=overwrite)
    pin_threads(threads)
    if not plan_.spec.input.is_dir():
        kinds = set(plan_.source.listing.kinds) & {"audio", "subtitle"}
        if kinds:
            warn(f"a folder of frames holds no {' or '.join(sorted(kinds))}: those of {plan_.spec.input.name} "
                 "are left out")
    clip = png_clip(build(replace(plan_.spec, rgb_source=False)), plan_.source)  # PNG holds RGB itself
    hdr = plan_.source.hdr
    if hdr is not None and "mastering_display" not in ffmpeg_input_options():
        warn(f"this ffmpeg cannot write the HDR10 metadata of {plan_.spec.input.name} ({hdr.describe()}) into "
             "PNG files (mDCV, cLLI); the frames keep their colour description (cICP) only")
        hdr = None
    tags = VideoTags({key: value for key, value in plan_.source.colour.items()
                               if key in ("color_primaries", "color_trc")}, plan_.source.sar, hdr)
    return len(write_png_frames(clip, out_dir, overwrite=overwrite, progress=progress, tags=tags))
