"""Folders of numbered images: their files in natural order, and the folder as a VapourSynth clip.

The trainer reads such folders as data, the command line as INPUT; both list them here.
"""

from __future__ import annotations

import itertools
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
    """One image as a one-frame clip through BestSource, without an index file on disk, turned as it is shown."""
    import vapoursynth as vs

    return upright(vs.core.bs.VideoSource(str(path), cachemode=0), path)


def exif_orientation(path: Path) -> int:
    """The EXIF orientation (1 to 8) of an image (JPEG, PNG, TIFF, WebP), read by Pillow; 1 when it has none."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):  # not an image Pillow reads: as stored
        return 1
    return orientation if orientation in range(1, 9) else 1


EXIF_ORIENTATION = 0x0112
# EXIF orientation -> what makes the stored picture the shown one: transpose first, then the flips
_ORIENTATIONS = {2: (False, True, False), 3: (False, True, True), 4: (False, False, True), 5: (True, False, False),
                 6: (True, True, False), 7: (True, True, True), 8: (True, False, True)}


def upright(clip: vs.VideoNode, path: Path) -> vs.VideoNode:
    """The clip of an image as every viewer shows it: turned and mirrored as its EXIF orientation says (a turn by
    a quarter also swaps the pixel aspect ratio)."""
    import vapoursynth as vs

    turn = _ORIENTATIONS.get(exif_orientation(path)) if path.suffix.lower() in IMAGE_SUFFIXES else None
    if turn is None:
        return clip
    transpose, mirror, flip = turn
    if transpose:
        clip = vs.core.std.Transpose(clip)
        props = clip.get_frame(0).props
        if "_SARNum" in props and "_SARDen" in props:
            clip = vs.core.std.SetFrameProps(clip, _SARNum=props["_SARDen"], _SARDen=props["_SARNum"])
    if mirror:
        clip = vs.core.std.FlipHorizontal(clip)
    if flip:
        clip = vs.core.std.FlipVertical(clip)
    return clip


def numbering_gaps(files: Sequence[Path]) -> list[str]:
    """Where the numbers of consecutive files (same name around the number) skip some: "img3.png (between img2.png
    and img4.png)"."""
    gaps = []
    for a, b in itertools.pairwise(files):
        found_a, found_b = _NUMBERED.match(a.name), _NUMBERED.match(b.name)
        if found_a is None or found_b is None or found_a.group(1, 3) != found_b.group(1, 3):
            continue
        skipped = int(found_b.group(2)) - int(found_a.group(2)) - 1
        if skipped > 0:
            width = len(found_a.group(2)) if found_a.group(2).startswith("0") else 0
            first = f"{found_a.group(1)}{int(found_a.group(2)) + 1:0{width}d}{found_a.group(3)}"
            what = first if skipped == 1 else f"{skipped} files from {first}"
            gaps.append(f"{what} (between {a.name} and {b.name})")
    return gaps


_NUMBERED = re.compile(r"^(.*?)(\d+)(\D*)$")


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

    clip = upright(vs.core.bs.VideoSource(str(path), cachemode=0), Path(path))
    fmt = clip.format
    # limited-range video (a GRAY one too) is stretched to full range: its black is 0, its white 1
    gray = fmt.replace(color_family=vs.GRAY, subsampling_w=0, subsampling_h=0)
    matrix = {"matrix_s": "709"} if fmt.color_family == vs.RGB else {}
    return vs.core.resize.Point(clip, format=gray.id, range_s="full", **matrix)
