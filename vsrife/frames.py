"""Folders of numbered images: their files in natural order, and the folder as a VapourSynth clip.

The trainer reads such folders as data, the command line as INPUT; both list them here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import vapoursynth as vs

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})


def natural_key(path: Path) -> list[object]:
    """Sort key that orders numbered names by number: frame2.png before frame10.png."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def image_files(folder: Path) -> list[Path]:
    """The image files in `folder` (by suffix, any case) in natural name order."""
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                  key=natural_key)


def open_image(path: Path) -> vs.VideoNode:
    """One image as a one-frame clip through BestSource, without an index file on disk."""
    import vapoursynth as vs

    return vs.core.bs.VideoSource(str(path), cachemode=0)


def describe(clip: vs.VideoNode) -> str:
    """Size and format of a clip, as the messages about images show them: 640x272 RGB24."""
    return f"{clip.width}x{clip.height} {clip.format.name}"


def first_difference(files: Sequence[Path], progress: Callable[[int], None] | None = None) -> str | None:
    """Why the images cannot be one clip: the first file whose size or format differs from the first file's,
    or one with an alpha channel (the interpolation carries none); None when they fit."""
    first = open_image(files[0])
    for index, path in enumerate(files):
        clip = first if index == 0 else open_image(path)
        if describe(clip) != describe(first):
            return (f"{path.name} is {describe(clip)}, unlike {files[0].name} and the files before it "
                    f"({describe(first)})")
        if index == 0 and "_Alpha" in clip.get_frame(0).props:
            return alpha_message(path)
        if progress is not None:
            progress(index + 1)
    return None


def alpha_message(path: Path) -> str:
    return (f"{path.name} has an alpha channel, which the interpolation cannot carry; drop it first "
            f"(ffmpeg -i {path.name} -vf format=rgb24 ... keeps the colour) or composite it onto a background")


def image_sequence(folder: str | Path, fpsnum: int = 25, fpsden: int = 1) -> vs.VideoNode:
    """The numbered images in `folder` as a clip at fpsnum/fpsden, in natural order.

    Each file is decoded when its frame is requested; one whose size or format differs from the first file's fails
    its frame with a message naming it (the command line checks every file before it starts).
    """
    import vapoursynth as vs

    files = image_files(Path(folder))
    if not files:
        raise vs.Error(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    first = open_image(files[0])

    def frame(n: int) -> vs.VideoNode:
        clip = first if n == 0 else open_image(files[n])
        if describe(clip) != describe(first):
            raise vs.Error(f"{files[n].name} is {describe(clip)}, unlike {files[0].name} ({describe(first)})")
        return clip

    blank = vs.core.std.BlankClip(first, length=len(files), fpsnum=fpsnum, fpsden=fpsden)
    return vs.core.std.FrameEval(blank, frame).std.AssumeFPS(fpsnum=fpsnum, fpsden=fpsden)


def open_mask(path: str | Path) -> vs.VideoNode:
    """A mask file (an image, used for every frame, or a video) as the GRAY clip the filters' `mask` takes: full
    range, same bit depth; RGB through BT.709 luma, YUV its luma plane."""
    import vapoursynth as vs

    clip = vs.core.bs.VideoSource(str(path), cachemode=0)
    fmt = clip.format
    # limited-range video (a GRAY one too) is stretched to full range: its black is 0, its white 1
    gray = fmt.replace(color_family=vs.GRAY, subsampling_w=0, subsampling_h=0)
    matrix = {"matrix_s": "709"} if fmt.color_family == vs.RGB else {}
    return vs.core.resize.Point(clip, format=gray.id, range_s="full", **matrix)
