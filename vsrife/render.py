"""The work behind `python -m vsrife interpolate | script | images`: plan a graph, run it, encode what it makes."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import ffmpeg
import vapoursynth as vs

from . import media
from .media import MediaError
from .rate import output_rate
from .registry import METHODS
from .script import GraphSpec, run_script, script_text


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
        return {"multi": self.multi or 2}

    def factor_over(self, source_fps: Fraction) -> Fraction:
        """Output rate / source rate; a MediaError when it would not raise the rate."""
        if self.fps is not None:
            if source_fps <= 0 or self.fps <= source_fps:
                raise MediaError(f"--fps {_rate(self.fps)} is not higher than the source's {_rate(source_fps)} fps")
            return self.fps / source_fps
        factor = self.factor if self.factor is not None else Fraction(self.multi or 2)
        if factor <= 1:
            option = "--factor" if self.factor is not None else "--multi"
            raise MediaError(f"{option} {_rate(factor)} does not raise the frame rate; it must be greater than 1")
        return factor


def _rate(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


@dataclass(frozen=True)
class Plan:
    """A graph to run and what encoding it needs to know about its source."""

    spec: GraphSpec
    source: media.SourceInfo
    source_fps: Fraction  # after any conversion to a constant rate
    first_frame: int
    frame_count: int  # source frames in the rendered range
    output_frames: int  # frames the graph outputs, as the plugin counts them (vsrife.rate)


def plan(input_path: Path, method: str, rate: RateRequest, filter_args: dict[str, Any], *, start: int | None = None,
         end: int | None = None, montage: bool = False, warn: Callable[[str], None] = print) -> Plan:
    """Probe the input and decide the graph: a MediaError for anything that cannot work, before any frame is made."""
    if method not in METHODS:
        raise MediaError(f"--method {method}: choose one of {', '.join(METHODS)}")
    info = media.probe(input_path)
    constant_fps = None
    source_fps = info.fps
    count = info.num_frames
    if info.variable_rate:
        constant_fps = media.constant_rate_for(info)
        source_fps = constant_fps
        count = media.open_video(input_path, fpsnum=constant_fps.numerator, fpsden=constant_fps.denominator).num_frames
        warn(f"{input_path.name} has a variable frame rate (frames last {info.shortest_ms:.1f} to "
             f"{info.longest_ms:.1f} ms): converting it to a constant {_rate(constant_fps)} fps first, "
             "repeating or dropping source frames as needed")
    first = start or 0
    last = count - 1 if end is None else end
    if first < 0 or last >= count or first > last:
        raise MediaError(f"--start {first} --end {last}: the source has frames 0 to {count - 1}")
    if last - first + 1 < 2:
        raise MediaError("the range to render must hold at least 2 source frames")
    rate.factor_over(source_fps)  # the command line's words for a rate that does not raise the source's
    try:
        answer = output_rate(last - first + 1, source_fps, rate.plugin_args())
    except vs.Error as exc:
        raise MediaError(str(exc)) from None
    spec = GraphSpec(input=input_path, method=method, rate=rate.plugin_args(), factor=answer.factor,
                     filter_args=filter_args, start=start, end=end, constant_fps=constant_fps,
                     rgb_source=info.rgb, montage=montage)
    return Plan(spec=spec, source=info, source_fps=source_fps, first_frame=first, frame_count=last - first + 1,
                output_frames=answer.frames)


def build(spec: GraphSpec) -> vs.VideoNode:
    """The output clip of the spec's script; a MediaError carrying the filter's own message on bad arguments."""
    try:
        return run_script(script_text(spec), f"<{spec.input.name}>")
    except vs.Error as exc:
        raise MediaError(str(exc)) from None


@dataclass(frozen=True)
class OutputSettings:
    """How an output file is written: the video encoder's options and colour tags, the companion streams."""

    video_options: dict[str, Any]
    colour: dict[str, int | str]  # setparams options (media.colour_options)
    streams: list[Any]  # the source's audio and subtitles, cut to the rendered range
    stream_options: dict[str, Any]


def output_settings(plan_: Plan, output: Path, *, codec: str | None = None, crf: int | None = None,
                    lossless: bool = False, overwrite: bool = False,
                    warn: Callable[[str], None] = print) -> OutputSettings:
    """Check that `output` can be written as asked and decide how: a MediaError before any frame is made."""
    check_output(output, plan_.spec.input, overwrite=overwrite)
    options = media.video_options(output.suffix, codec, crf, lossless)
    media.check_container(output.suffix, options)
    colour = dict(plan_.source.colour)
    if plan_.spec.rgb_source:
        colour |= {"colorspace": 1}  # the script converts RGB to YUV with BT.709 coefficients
    companion = media.Companion(plan_.spec.input, start_s=float(plan_.first_frame / plan_.source_fps),
                                duration_s=float(plan_.frame_count / plan_.source_fps)
                                if plan_.spec.start is not None or plan_.spec.end is not None else None)
    streams, stream_options = media.companion_plan(companion, output.suffix, warn)
    return OutputSettings(options, colour, streams, stream_options)


def check_threads(threads: int | None) -> None:
    """A MediaError for a thread count below 1."""
    if threads is not None and threads < 1:
        raise MediaError(f"--threads {threads}: it must be at least 1")


def pin_threads(threads: int | None) -> None:
    """Make this process render with `threads` torch threads (None: torch's default, one per core). Call it before
    the first frame: VapourSynth's threads take the count when they first run torch."""
    check_threads(threads)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def interpolate(plan_: Plan, output: Path, *, threads: int | None = None, codec: str | None = None,
                crf: int | None = None, lossless: bool = False, overwrite: bool = False, progress: bool = True,
                warn: Callable[[str], None] = print) -> int:
    """Render the plan into `output` with the source's audio and subtitles, with `threads` torch threads (None:
    torch's default); returns the number of frames written."""
    settings = output_settings(plan_, output, codec=codec, crf=crf, lossless=lossless, overwrite=overwrite,
                               warn=warn)
    pin_threads(threads)
    clip = build(plan_.spec)
    with progress_bar(clip.num_frames, progress) as update:
        media.encode(clip, output, streams=settings.streams,
                     output_options=settings.video_options | settings.stream_options, colour=settings.colour,
                     progress=update)
    return clip.num_frames


def check_output(output: Path, *inputs: Path, overwrite: bool = False) -> None:
    """A MediaError if `output` would overwrite an input or an existing file unasked, or cannot be written."""
    for source in inputs:
        same = output.resolve() == source.resolve() or (
            output.exists() and source.exists() and os.path.samefile(output, source))
        if same:
            raise MediaError(f"{output}: that is the input; choose another output name")
    if output.exists() and not output.is_dir() and not overwrite:
        raise MediaError(f"{output}: exists; pass --overwrite to replace it")
    parent = output.resolve().parent
    if not parent.is_dir():
        raise MediaError(f"{output}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise MediaError(f"{output}: cannot write in {parent}")
    if output.is_dir():
        raise MediaError(f"{output}: is a folder")


@contextmanager
def progress_bar(total: int, enabled: bool) -> Iterator[Callable[[int, int], None]]:
    """A tqdm bar on stderr (frames done/total, frames per second, ETA) and the callback that moves it."""
    from tqdm import tqdm

    with tqdm(total=total, unit="frame", disable=not enabled, file=sys.stderr, dynamic_ncols=True,
              smoothing=0.1) as bar:
        def update(done: int, _total: int) -> None:
            bar.update(done - bar.n)

        yield update


# ------------------------------------------------------------------------------------------------ images


def image_clip(paths: tuple[Path, Path]) -> vs.VideoNode:
    """Two stills as a 2-frame clip in one format: RGB (or GRAY) at the deeper of the two bit depths."""
    frames = [media.open_video(path) for path in paths]
    if (frames[0].width, frames[0].height) != (frames[1].width, frames[1].height):
        sizes = " and ".join(f"{clip.width}x{clip.height}" for clip in frames)
        raise MediaError(f"the images differ in size ({sizes})")
    gray = all(clip.format.color_family == vs.GRAY for clip in frames)
    bits = 8 if max(clip.format.bits_per_sample for clip in frames) <= 8 else 16
    target = vs.core.query_video_format(vs.GRAY if gray else vs.RGB, vs.INTEGER, bits, 0, 0)
    converted = []
    for clip in frames:
        if clip.format.id != target.id:
            matrix = {} if clip.format.color_family != vs.YUV else {"matrix_in_s": "709"}
            clip = vs.core.resize.Bicubic(clip, format=target.id, **matrix)
        converted.append(clip[0])
    return vs.core.std.Splice(converted)


def raw_pixel_format(clip_format: vs.VideoFormat) -> tuple[str, list[int] | None]:
    """ffmpeg's name for the clip's planar format and the plane order it expects (RGB clips: G, B, R)."""
    depth = "" if clip_format.bits_per_sample == 8 else "16le"
    if clip_format.color_family == vs.GRAY:
        return f"gray{depth}", None
    return f"gbrp{depth}", [1, 2, 0]


def images(paths: tuple[Path, Path], exp: int, out_dir: Path, method: str, filter_args: dict[str, Any], *,
           gif: Path | None = None, mp4: Path | None = None, fps: Fraction = Fraction(25),
           overwrite: bool = False, progress: bool = True) -> list[Path]:
    """Write the 2**exp + 1 frames from the first image to the second as PNGs in `out_dir` (and a GIF, an MP4)."""
    if exp < 1:
        raise MediaError("--exp must be at least 1")
    if method not in METHODS:
        raise MediaError(f"--method {method}: choose one of {', '.join(METHODS)}")
    for target in (gif, mp4):
        if target is not None:
            check_output(target, *paths, overwrite=overwrite)
    if out_dir.exists() and not out_dir.is_dir():
        raise MediaError(f"{out_dir}: exists and is not a folder")
    pair = image_clip(paths)
    steps = 2**exp
    try:
        clip = getattr(vs.core.vfi, METHODS[method].filter)(pair, multi=steps, **filter_args)[: steps + 1]
    except vs.Error as exc:
        raise MediaError(str(exc)) from None
    pixel_format, order = raw_pixel_format(clip.format)
    if order is not None:
        clip = vs.core.std.ShufflePlanes(clip, order, vs.RGB)
    digits = max(3, len(str(steps)))
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    # Frames go to a hidden folder beside their final names, then move over: no half-written set under DIR.
    with tempfile.TemporaryDirectory(prefix=".vsrife-partial-", dir=out_dir) as scratch:
        pattern = Path(scratch) / f"frame_%0{digits}d.png"
        raw = {"format": "rawvideo", "pix_fmt": pixel_format, "s": f"{clip.width}x{clip.height}", "framerate": 1}
        with progress_bar(clip.num_frames, progress) as update:
            media.encode(clip, pattern, y4m=False, input_options=raw, output_options={"start_number": 0},
                         progress=update, atomic=False)
        for index in range(clip.num_frames):
            name = f"frame_{index:0{digits}d}.png"
            os.replace(Path(scratch) / name, out_dir / name)
            written.append(out_dir / name)
    frames = ffmpeg.input(str(out_dir / f"frame_%0{digits}d.png"), framerate=_rate(fps), start_number=0)
    if gif is not None:
        split = frames.video.split()
        palette = split[0].filter("palettegen")
        paletted = ffmpeg.filter([split[1], palette], "paletteuse")
        media.run_into(ffmpeg.output(paletted, str(media.partial_path(gif)), f="gif"), gif)
    if mp4 is not None:
        even = frames.video.filter("pad", "ceil(iw/2)*2", "ceil(ih/2)*2")
        media.run_into(ffmpeg.output(even, str(media.partial_path(mp4)), vcodec="libx264", crf=16,
                                  pix_fmt="yuv420p", f="mp4"), mp4)
    return written
