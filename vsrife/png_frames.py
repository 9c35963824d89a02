"""Frames written as numbered PNGs (frame_000.png, ...): 8 or 16 bits, RGB or grey, with what the frames do not
carry (colour description, pixel aspect ratio, HDR10 metadata) as PNG chunks."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import vapoursynth as vs

from . import encoding, frames, media
from .progress import progress_bar
from .tags import VideoTags


def png_clip(clip: vs.VideoNode, source: media.SourceInfo) -> vs.VideoNode:
    """The clip as PNG holds it: RGB (GRAY stays GRAY), 8 bits for 8-bit sources, else 16."""
    bits = 8 if clip.format.bits_per_sample <= 8 else 16
    family = vs.GRAY if clip.format.color_family == vs.GRAY else vs.RGB
    target = vs.core.query_video_format(family, vs.INTEGER, bits, 0, 0)
    if clip.format.id == target.id:
        return clip
    matrix = {}
    if clip.format.color_family == vs.YUV:  # the source's matrix; BT.709 where it names none
        matrix = {"matrix_in": int(source.colour.get("colorspace", 1))}
    return vs.core.resize.Bicubic(clip, format=target.id, **matrix)


def frame_name(index: int, count: int) -> str:
    """frame_000.png, ...: at least three digits, as many as the last index needs."""
    return f"frame_{index:0{max(3, len(str(count - 1)))}d}.png"


def write_png_frames(clip: vs.VideoNode, out_dir: Path, *, overwrite: bool = False, progress: bool = True,
                     tags: VideoTags | None = None) -> list[Path]:
    """Write an RGB or GRAY clip (8 or 16 bits) as DIR/frame_NNN.png; with `overwrite`, the images that were in
    DIR before are removed once the new ones are complete. Returns the new files in order."""
    out_dir.mkdir(exist_ok=True)
    earlier = frames.image_files(out_dir)
    written: list[Path] = []
    # Frames go to a hidden folder beside their final names, then move over: no half-written set under DIR.
    with tempfile.TemporaryDirectory(prefix=".vsrife-partial-", dir=out_dir) as scratch:
        digits = len(frame_name(0, clip.num_frames)) - len("frame_.png")
        pattern = Path(scratch) / f"frame_%0{digits}d.png"
        with progress_bar(clip.num_frames, progress) as update:
            encoding.encode(clip, pattern, y4m=False, output_options={"start_number": 0}, tags=tags,
                            progress=update, atomic=False)
        if overwrite:
            for old in earlier:
                old.unlink()
        for index in range(clip.num_frames):
            name = frame_name(index, clip.num_frames)
            os.replace(Path(scratch) / name, out_dir / name)
            written.append(out_dir / name)
    return written
