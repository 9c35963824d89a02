"""`python -m vsrife images`: the frames between two stills, as numbered PNGs, and optionally a GIF and an MP4."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import ffmpeg
import vapoursynth as vs

from . import encoding, frames, media
from .errors import MediaError
from .output_settings import check_folder_output, check_output
from .png_frames import frame_name, write_png_frames
from .rate import fraction_text
from .registry import METHODS


def image_clip(paths: tuple[Path, Path]) -> vs.VideoNode:
    """Two stills as a 2-frame clip in one format: RGB (or GRAY) at the deeper of the two bit depths."""
    frames_ = [frames.upright(media.open_video(path), path) for path in paths]
    for path, clip in zip(paths, frames_, strict=True):
        if "_Alpha" in clip.get_frame(0).props:
            raise MediaError(frames.alpha_message(path))
    if (frames_[0].width, frames_[0].height) != (frames_[1].width, frames_[1].height):
        sizes = " and ".join(f"{clip.width}x{clip.height}" for clip in frames_)
        raise MediaError(f"the images differ in size ({sizes})")
    gray = all(clip.format.color_family == vs.GRAY for clip in frames_)
    bits = 8 if max(clip.format.bits_per_sample for clip in frames_) <= 8 else 16
    target = vs.core.query_video_format(vs.GRAY if gray else vs.RGB, vs.INTEGER, bits, 0, 0)
    converted = []
    for clip in frames_:
        if clip.format.id != target.id:
            matrix = {} if clip.format.color_family != vs.YUV else {"matrix_in_s": "709"}
            clip = vs.core.resize.Bicubic(clip, format=target.id, **matrix)
        converted.append(clip[0])
    return vs.core.std.Splice(converted)


def images(paths: tuple[Path, Path], exp: int, out_dir: Path, method: str, filter_args: dict[str, Any], *,
           gif: Path | None = None, mp4: Path | None = None, fps: Fraction = Fraction(25),
           overwrite: bool = False, progress: bool = True, warn: Callable[[str], None] = print) -> list[Path]:
    """Write the 2**exp + 1 frames from the first image to the second as PNGs in `out_dir` (and a GIF, an MP4)."""
    if exp < 1:
        raise MediaError("--exp must be at least 1")
    if method not in METHODS:
        raise MediaError(f"--method {method}: choose one of {', '.join(METHODS)}")
    for target in (gif, mp4):
        if target is not None:
            check_output(target, *paths, overwrite=overwrite)
    check_folder_output(out_dir, overwrite=overwrite)
    pair = image_clip(paths)
    steps = 2**exp
    try:
        if "mask" in filter_args:  # a file, as the command line gives it
            filter_args = {**filter_args, "mask": frames.open_mask(filter_args["mask"])}
        clip = getattr(vs.core.vfi, METHODS[method].filter)(pair, multi=steps, **filter_args)[: steps + 1]
    except vs.Error as exc:
        raise MediaError(str(exc)) from None
    written = write_png_frames(clip, out_dir, overwrite=overwrite, progress=progress)
    digits = len(frame_name(0, len(written))) - len("frame_.png")
    frames_in = ffmpeg.input(str(out_dir / f"frame_%0{digits}d.png"), framerate=fraction_text(fps), start_number=0)
    if gif is not None:
        split = frames_in.video.split()
        palette = split[0].filter("palettegen")
        paletted = ffmpeg.filter([split[1], palette], "paletteuse")
        encoding.run_into(ffmpeg.output(paletted, str(encoding.partial_path(gif)), f="gif"), gif)
    if mp4 is not None:
        if clip.width % 2 or clip.height % 2:
            warn(f"{mp4.name}: H.264 in 4:2:0 needs an even size: the {clip.width}x{clip.height} frames are padded "
                 f"to {clip.width + clip.width % 2}x{clip.height + clip.height % 2} with black")
        even = frames_in.video.filter("pad", "ceil(iw/2)*2", "ceil(ih/2)*2")
        encoding.run_into(ffmpeg.output(even, str(encoding.partial_path(mp4)), vcodec="libx264", crf=16,
                                        pix_fmt="yuv420p", f="mp4"), mp4)
    return written
