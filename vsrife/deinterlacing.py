"""Whether and how an interlaced source is made progressive before it is interpolated (bwdif, one frame per field)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import vapoursynth as vs

from . import media
from .errors import MediaError

# bwdif's field argument for a source's _FieldBased (1 bottom field first, 2 top field first): one frame per field
BWDIF_FIELD_RATE = {1: 2, 2: 3}


def bwdif_field(input_path: Path, info: media.SourceInfo, deinterlace: bool,
                warn: Callable[[str], None]) -> int | None:
    """bwdif's field argument when the source is interlaced and --deinterlace asks for it; warnings otherwise."""
    order = {1: "bottom field first", 2: "top field first"}.get(info.field_based)
    if order is None:
        if deinterlace:
            warn(f"{input_path.name} is progressive: --deinterlace does nothing")
        return None
    if not deinterlace:
        warn(f"{input_path.name} is interlaced ({order}): interpolated as it is, its two fields blend into "
             "combed frames. Pass --deinterlace to make one progressive frame per field first (bwdif, twice "
             "the frame rate), or deinterlace it yourself")
        return None
    if not hasattr(vs.core, "bwdif"):
        raise MediaError("--deinterlace needs the bwdif plugin: pip install vapoursynth-bwdif "
                         "(part of the cli extra)")
    return BWDIF_FIELD_RATE[info.field_based]
