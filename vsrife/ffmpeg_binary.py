"""Which ffmpeg to run: the one on PATH, else the binary that imageio-ffmpeg bundles (no other imports)."""

from __future__ import annotations

import shutil


def find_ffmpeg() -> str | None:
    """The ffmpeg executable to use, or None when there is neither one on PATH nor imageio-ffmpeg."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    return str(imageio_ffmpeg.get_ffmpeg_exe())
