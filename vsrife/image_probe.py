"""A folder of numbered images as the command line's INPUT: checked and described as a source, before any frame."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import vapoursynth as vs

from . import frames, media
from .media import MediaError
from .progress import progress_bar

DEFAULT_IMAGE_RATE = Fraction(25)


def probe_image_folder(folder: Path, rate: Fraction, progress: bool = False) -> media.SourceInfo:
    """A folder of numbered images as a source: every file checked to share the first one's size and format."""
    files = frames.image_files(folder)
    if len(files) < 2:
        raise MediaError(f"{folder}: a folder of frames needs at least 2 images "
                         f"({', '.join(sorted(frames.IMAGE_SUFFIXES))}), found {len(files)}")
    with progress_bar(len(files), progress, unit="image", description="checking images") as update:
        difference = frames.first_difference(files, lambda done: update(done, len(files)))
    if difference is not None:
        raise MediaError(f"{folder}: {difference}; every image must have the same size and format")
    first = frames.open_image(files[0])
    props = first.get_frame(0).props
    frame_ms = float(1000 / rate)
    rgb = first.format.color_family == vs.RGB
    yuv = first.format.replace(color_family=vs.YUV, subsampling_w=0, subsampling_h=0) if rgb else first.format
    return media.SourceInfo(path=folder, fps=rate, num_frames=len(files), variable_rate=False,
                            shortest_ms=frame_ms, longest_ms=frame_ms, rgb=rgb,
                            colour=media.colour_options(props), width=first.width, height=first.height,
                            bits=first.format.bits_per_sample, sar=media.pixel_aspect(props),
                            pixel_format=media.pixel_format(yuv))
