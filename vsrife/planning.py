"""The graph behind `python -m vsrife interpolate | script`: the source probed, the range and rate checked, and the
script's spec decided, before any frame is made."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import vapoursynth as vs

from . import frames, media
from .deinterlacing import bwdif_field
from .errors import MediaError
from .image_probe import DEFAULT_IMAGE_RATE, probe_image_folder
from .rate import fraction_text, output_rate
from .registry import METHODS
from .script import GraphSpec


@dataclass(frozen=True)
class RateRequest:
    """Exactly one of: an integer multiple, a rational factor, or a target frame rate."""

    multi: int | None = None
    factor: Fraction | None = None
    fps: Fraction | None = None

    def plugin_args(self) -> dict[str, int]:
        if self.factor is not None:
            return {"factor_num": self.factor.numerator, "factor_den": self.factor.denominator}
        if self.fps is not None:
            return {"fps_num": self.fps.numerator, "fps_den": self.fps.denominator}
        return {"multi": 2 if self.multi is None else self.multi}

    def factor_over(self, source_fps: Fraction) -> Fraction:
        """Output rate / source rate; a MediaError when it would not raise the rate."""
        if self.fps is not None:
            if source_fps <= 0 or self.fps <= source_fps:
                raise MediaError(f"--fps {fraction_text(self.fps)} is not higher than the source's "
                                 f"{fraction_text(source_fps)} fps")
            return self.fps / source_fps
        factor = self.factor if self.factor is not None else Fraction(2 if self.multi is None else self.multi)
        if factor <= 1:
            option = "--factor" if self.factor is not None else "--multi"
            raise MediaError(f"{option} {fraction_text(factor)} does not raise the frame rate; it must be greater "
                             "than 1")
        return factor


@dataclass(frozen=True)
class Plan:
    """A graph to run and what encoding it needs to know about its source."""

    spec: GraphSpec
    source: media.SourceInfo
    source_fps: Fraction  # of the frames the filter receives: after any conversion to a constant rate or deinterlacing
    first_frame: int
    frame_count: int  # frames the filter receives from the rendered range (fields, when deinterlaced)
    output_frames: int  # frames the graph outputs, as the plugin counts them (vsrife.rate)
    start_s: float = 0.0  # where a cut's start lies in the source, from its start (0: no cut at the start)
    video_offset_s: float = 0.0  # where the output's video starts: later than its audio, as in the source

    @property
    def duration_s(self) -> float:
        return float(self.frame_count / self.source_fps)

    @property
    def output_fps(self) -> Fraction:
        return self.source_fps * self.spec.factor


def plan(input_path: Path, method: str, rate: RateRequest, filter_args: dict[str, Any], *, start: int | None = None,
         end: int | None = None, montage: bool = False, deinterlace: bool = False,
         image_rate: Fraction | None = None, warn: Callable[[str], None] = print, progress: bool = False) -> Plan:
    """Probe the input (a video file or a folder of numbered images) and decide the graph: a MediaError for
    anything that cannot work, before any frame is made; a warning for anything the output cannot keep."""
    if method not in METHODS:
        raise MediaError(f"--method {method}: choose one of {', '.join(METHODS)}")
    if input_path.is_dir():
        info = probe_image_folder(input_path, image_rate or DEFAULT_IMAGE_RATE, progress)
    else:
        if image_rate is not None:
            raise MediaError("--rate is the frame rate of a folder of images; a video file has its own "
                             "(--fps sets the output's)")
        info = media.probe(input_path)
    if info.alpha:
        raise MediaError(frames.alpha_message(input_path))
    for note in info.notes:
        warn(note)
    for name in info.dynamic_hdr:
        warn(f"{input_path.name} carries {name}, which changes with every frame and cannot be made for the new "
             "ones: the output keeps only the HDR10 static metadata"
             + (" (mastering display, MaxCLL/MaxFALL)" if info.hdr is not None else ""))
    constant_fps = None
    source_fps = info.fps
    count = info.num_frames
    if info.timing.converted:
        constant_fps = source_fps
        threads = {} if info.decoder_threads is None else {"threads": info.decoder_threads}
        count = media.open_video(input_path, fpsnum=constant_fps.numerator, fpsden=constant_fps.denominator,
                                 **threads).num_frames
    if info.timing.variable:
        warn(f"{input_path.name} has a variable frame rate (frames last {info.timing.shortest_ms:.1f} to "
             f"{info.timing.longest_ms:.1f} ms): converting it to a constant {fraction_text(source_fps)} fps first, "
             "repeating or dropping source frames as needed")
    first, last = _range(input_path, count, start, end)
    start_s = info.video_start_s + float(first / source_fps) if first else 0.0
    frame_count = last - first + 1
    field = bwdif_field(input_path, info, deinterlace, warn)
    if field is not None:
        source_fps, frame_count = source_fps * 2, frame_count * 2
    rate.factor_over(source_fps)  # the command line's words for a rate that does not raise the source's
    try:
        answer = output_rate(frame_count, source_fps, rate.plugin_args())
    except vs.Error as exc:
        raise MediaError(str(exc)) from None
    spec = GraphSpec(input=input_path, method=method, rate=rate.plugin_args(), factor=answer.factor,
                     filter_args=filter_args, start=start, end=end, constant_fps=constant_fps,
                     rgb_source=info.rgb, montage=montage,
                     image_rate=info.fps if input_path.is_dir() else None, decoder_threads=info.decoder_threads,
                     deinterlace=field)
    return Plan(spec=spec, source=info, source_fps=source_fps, first_frame=first, frame_count=frame_count,
                output_frames=answer.frames, start_s=start_s, video_offset_s=0.0 if first else info.video_start_s)


def _range(input_path: Path, count: int, start: int | None, end: int | None) -> tuple[int, int]:
    """The first and last source frame to render; a MediaError in the words of the options given."""
    given = " ".join(f"--{name} {value}" for name, value in (("start", start), ("end", end)) if value is not None)
    if count < 2 and not given:
        raise MediaError(f"{input_path.name} has {count} frame{'s' * (count != 1)}; interpolation needs at least 2")
    first = start or 0
    last = count - 1 if end is None else end
    if first < 0 or last >= count or first > last:
        raise MediaError(f"{given}: the source has frames 0 to {count - 1}")
    if last == first:
        raise MediaError(f"{given}: the range to render must hold at least 2 source frames")
    return first, last
