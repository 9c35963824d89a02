"""Which ffmpeg to run (the one on PATH, else the binary that imageio-ffmpeg bundles) and what it has: encoders,
the pixel formats they take, the muxers' default codecs, its per-file options."""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from typing import Any

from .errors import MediaError


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


@cache
def ffmpeg_executable() -> str:
    """The ffmpeg on PATH, else the one bundled with imageio-ffmpeg; a MediaError naming both when neither is."""
    found = find_ffmpeg()
    if found is None:
        raise MediaError("ffmpeg not found: put it on PATH or `pip install imageio-ffmpeg`")
    return found


def ffmpeg_command(stream: Any, *global_args: str, loglevel: str = "error") -> list[str]:
    """The command line of an ffmpeg-python output: quiet but for errors, overwriting, never reading the terminal."""
    return (stream.global_args("-nostdin", "-loglevel", loglevel, *global_args).overwrite_output()
            .compile(cmd=ffmpeg_executable()))


def _help(*args: str) -> str:
    return subprocess.run([ffmpeg_executable(), "-hide_banner", *args], capture_output=True, text=True,
                          check=False).stdout


@cache
def video_encoders() -> dict[str, str]:
    """The video encoders this ffmpeg has, in its order, each with the codec it writes."""
    encoders = {}
    for line in _help("-encoders").splitlines():
        fields = line.split()
        if line.startswith(" V") and len(fields) > 1 and fields[1] != "=":
            codec = re.search(r"\(codec (\w+)\)$", line)
            encoders[fields[1]] = codec.group(1) if codec else fields[1]
    return encoders


@cache
def encoder_pixel_formats(encoder: str) -> tuple[str, ...]:
    """The pixel formats `encoder` takes, as `ffmpeg -h encoder=NAME` lists them (empty: it does not say)."""
    found = re.search(r"Supported pixel formats: (.*)", _help("-h", f"encoder={encoder}"))
    return tuple(found.group(1).split()) if found else ()


@cache
def muxer_defaults(muxer: str) -> dict[str, str]:
    """The default codec per stream kind ("video", "audio", "subtitle") of one of this ffmpeg's muxers."""
    return dict(re.findall(r"Default (\w+) codec: ([\w-]+)\.", _help("-h", f"muxer={muxer}")))


@cache
def ffmpeg_input_options() -> frozenset[str]:
    """The per-file options this ffmpeg lists in its full help (``-mastering_display``, say, in recent ones)."""
    return frozenset(match.group(1) for match in re.finditer(r"^-(\w+)", _help("-h", "full"), re.MULTILINE))
