"""A folder of numbered images as the command line's INPUT: checked and described as a source, before any frame."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import vapoursynth as vs

from . import frames, media
from .errors import MediaError
from .listing import list_streams
from .progress import progress_bar
from .timing import GAPS_NAMED, Timing

DEFAULT_IMAGE_RATE = Fraction(25)


def probe_image_folder(folder: Path, rate: Fraction, progress: bool = False) -> media.SourceInfo:
    """A folder of numbered images as a source: every file checked to share the first one's size and format (as
    shown: turned as its EXIF orientation says), gaps in the numbering named."""
    files = frames.image_files(folder)
    if len(files) < 2:
        raise MediaError(f"{folder}: a folder of frames needs at least 2 images "
                         f"({', '.join(sorted(frames.IMAGE_SUFFIXES))}), found {len(files)}")
    with progress_bar(len(files), progress, unit="image", description="checking images") as update:
        difference = frames.first_difference(files, lambda done: update(done, len(files)))
    if difference is not None:
        raise MediaError(f"{folder}: {difference}; every image must have the same size and format")
    notes = []
    gaps = frames.numbering_gaps(files)
    if gaps:
        more = f" and {len(gaps) - GAPS_NAMED} more" if len(gaps) > GAPS_NAMED else ""
        notes.append(f"the numbering of {folder.name} skips {', '.join(gaps[:GAPS_NAMED])}{more}: the images are "
                     "read as consecutive frames, so the motion jumps there")
    first = frames.open_image(files[0])
    props = first.get_frame(0).props
    stored = list_streams(files[0]).video
    return media.SourceInfo(path=folder, timing=Timing(rate=rate), num_frames=len(files),
                            rgb=first.format.color_family == vs.RGB, colour=media.colour_options(props),
                            width=first.width, height=first.height, bits=first.format.bits_per_sample,
                            sar=media.pixel_aspect(props), pixel_format=media.piped_format(first.format),
                            source_format=(stored.pixel_format if stored else None) or
                            media.piped_format(first.format), notes=tuple(notes))
