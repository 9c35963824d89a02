"""The work behind `python -m vsrife interpolate | script | images`: plan a graph, run it, encode what it makes."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import ffmpeg
import vapoursynth as vs

from . import encoding, frames, media
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
        return {"multi": 2 if self.multi is None else self.multi}

    def factor_over(self, source_fps: Fraction) -> Fraction:
        """Output rate / source rate; a MediaError when it would not raise the rate."""
        if self.fps is not None:
            if source_fps <= 0 or self.fps <= source_fps:
                raise MediaError(f"--fps {_rate(self.fps)} is not higher than the source's {_rate(source_fps)} fps")
            return self.fps / source_fps
        factor = self.factor if self.factor is not None else Fraction(2 if self.multi is None else self.multi)
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
    source_fps: Fraction  # of the frames the filter receives: after any conversion to a constant rate or deinterlacing
    first_frame: int
    frame_count: int  # frames the filter receives from the rendered range (fields, when deinterlaced)
    output_frames: int  # frames the graph outputs, as the plugin counts them (vsrife.rate)
    start_s: float = 0.0  # where the rendered range starts in the source

    @property
    def duration_s(self) -> float:
        return float(self.frame_count / self.source_fps)

    @property
    def output_fps(self) -> Fraction:
        return self.source_fps * self.spec.factor


# bwdif's field argument for a source's _FieldBased (1 bottom field first, 2 top field first): one frame per field
BWDIF_FIELD_RATE = {1: 2, 2: 3}


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
    if info.variable_rate:
        constant_fps = media.constant_rate_for(info)
        source_fps = constant_fps
        threads = {} if info.decoder_threads is None else {"threads": info.decoder_threads}
        count = media.open_video(input_path, fpsnum=constant_fps.numerator, fpsden=constant_fps.denominator,
                                 **threads).num_frames
        warn(f"{input_path.name} has a variable frame rate (frames last {info.shortest_ms:.1f} to "
             f"{info.longest_ms:.1f} ms): converting it to a constant {_rate(constant_fps)} fps first, "
             "repeating or dropping source frames as needed")
    first = start or 0
    last = count - 1 if end is None else end
    if first < 0 or last >= count or first > last:
        raise MediaError(f"--start {first} --end {last}: the source has frames 0 to {count - 1}")
    if last - first + 1 < 2:
        raise MediaError("the range to render must hold at least 2 source frames")
    start_s = float(first / source_fps)
    frame_count = last - first + 1
    bwdif_field = _deinterlacing(input_path, info, deinterlace, warn)
    if bwdif_field is not None:
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
                     deinterlace=bwdif_field)
    return Plan(spec=spec, source=info, source_fps=source_fps, first_frame=first, frame_count=frame_count,
                output_frames=answer.frames, start_s=start_s)


def _deinterlacing(input_path: Path, info: media.SourceInfo, deinterlace: bool,
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



def build(spec: GraphSpec) -> vs.VideoNode:
    """The output clip of the spec's script; a MediaError carrying the filter's own message on bad arguments."""
    try:
        return run_script(script_text(spec), f"<{spec.input.name}>")
    except vs.Error as exc:
        raise MediaError(str(exc)) from None


@dataclass(frozen=True)
class OutputSettings:
    """How an output file is written: the video encoder's options and tags, the companion streams."""

    video_options: dict[str, Any]
    tags: encoding.VideoTags  # what the y4m frames do not carry: colour description, SAR, HDR10 metadata, padding
    streams: list[Any]  # the source's audio and subtitles, cut to the rendered range
    stream_options: dict[str, Any]


def output_settings(plan_: Plan, output: Path, *, codec: str | None = None, crf: int | None = None,
                    lossless: bool = False, overwrite: bool = False,
                    warn: Callable[[str], None] = print) -> OutputSettings:
    """Check that `output` can be written as asked and decide how: a MediaError before any frame is made."""
    check_output(output, plan_.spec.input, overwrite=overwrite)
    source = plan_.source
    suffix = output.suffix.lower()
    if suffix in encoding.MILLISECOND_CONTAINERS and plan_.output_fps > encoding.MILLISECOND_MAX_FPS:
        raise MediaError(f"{output.name}: {float(plan_.output_fps):.2f} fps is too fast for Matroska and WebM, which "
                         f"store times in milliseconds (frames would share a timestamp); write .mp4 or .mov, "
                         f"or ask for at most {encoding.MILLISECOND_MAX_FPS} fps")
    options = encoding.video_options(output.suffix, codec, crf, lossless,
                                  deep=source.bits > 8 or source.high_dynamic_range)
    hdr = None
    if source.hdr is not None:
        hdr, options = encoding.hdr_tags(source.hdr, options)
    colour = dict(source.colour)
    if plan_.spec.rgb_source:
        colour |= {"colorspace": 1, "range": "tv"}  # the script converts RGB to limited-range BT.709 YUV
    tags = encoding.VideoTags(colour, source.sar, hdr)
    width = source.width * (2 if plan_.spec.montage else 1)
    fit = encoding.check_container(output.suffix, options, width=width, height=source.height,
                                pix_fmt=source.pixel_format, tags=tags)
    name = options["c:v"]
    if fit.pixel_format.replace("yuvj", "yuv") != source.pixel_format:  # yuvj: the same, tagged full range
        change = f"{name} stores the {source.pixel_format} frames as {fit.pixel_format}"
        if lossless:
            raise MediaError(f"--lossless: {change}, which is not lossless; choose --codec ffv1")
        warn(f"{change} (fewer bits or less chroma); --codec ffv1 --lossless keeps them as they are")
    if any(fit.pad):
        right, bottom = fit.pad
        warn(f"{name} cannot store {width}x{source.height} {source.pixel_format} frames: they are padded to "
             f"{width + right}x{source.height + bottom} ({right} column(s) on the right, {bottom} row(s) at the "
             "bottom, repeating the edge pixels)")
    cut = plan_.spec.start is not None or plan_.spec.end is not None or source.damaged
    companion = encoding.Companion(plan_.spec.input, start_s=plan_.start_s,
                                duration_s=plan_.duration_s if cut else None)
    streams: list[Any] = []
    stream_options: dict[str, Any] = {}
    if not plan_.spec.input.is_dir():
        streams, stream_options = encoding.companion_plan(companion, output.suffix, warn)
    return OutputSettings(options, replace(tags, pad=fit.pad), streams, stream_options)


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
    torch's default); returns the number of frames written. A folder of PNGs is interpolate_to_folder's."""
    settings = output_settings(plan_, output, codec=codec, crf=crf, lossless=lossless, overwrite=overwrite,
                               warn=warn)
    pin_threads(threads)
    clip = build(plan_.spec)
    with progress_bar(clip.num_frames, progress) as update:
        encoding.encode(clip, output, streams=settings.streams,
                     output_options=settings.video_options | settings.stream_options, tags=settings.tags,
                     progress=update)
    return clip.num_frames


def interpolate_to_folder(plan_: Plan, out_dir: Path, *, threads: int | None = None, overwrite: bool = False,
                          progress: bool = True, warn: Callable[[str], None] = print) -> int:
    """Render the plan as numbered PNGs in `out_dir` (8-bit sources give 8-bit PNGs, deeper ones 16-bit), with
    `threads` torch threads (None: torch's default)."""
    check_folder_output(out_dir, plan_.spec.input, overwrite=overwrite)
    pin_threads(threads)
    if not plan_.spec.input.is_dir():
        kinds = set(media.list_streams(plan_.spec.input).kinds) & {"audio", "subtitle"}
        if kinds:
            warn(f"a folder of frames holds no {' or '.join(sorted(kinds))}: those of {plan_.spec.input.name} "
                 "are left out")
    clip = png_clip(build(replace(plan_.spec, rgb_source=False)), plan_.source)  # PNG holds RGB itself
    hdr = plan_.source.hdr
    if hdr is not None and "mastering_display" not in media.ffmpeg_input_options():
        warn(f"this ffmpeg cannot write the HDR10 metadata of {plan_.spec.input.name} ({hdr.describe()}) into "
             "PNG files (mDCV, cLLI); the frames keep their colour description (cICP) only")
        hdr = None
    tags = encoding.VideoTags({key: value for key, value in plan_.source.colour.items()
                            if key in ("color_primaries", "color_trc")}, plan_.source.sar, hdr)
    return len(write_png_frames(clip, out_dir, overwrite=overwrite, progress=progress, tags=tags))


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


def check_folder_output(out_dir: Path, *inputs: Path, overwrite: bool = False) -> None:
    """A MediaError unless `out_dir` can take numbered frames: a new or empty folder, or (with --overwrite) one
    whose images may be replaced."""
    for source in inputs:
        if out_dir.resolve() == source.resolve():
            raise MediaError(f"{out_dir}: that is the input; choose another folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise MediaError(f"{out_dir}: exists and is not a folder")
    if out_dir.is_dir():
        if not os.access(out_dir, os.W_OK):
            raise MediaError(f"{out_dir}: cannot write in it")
        images = frames.image_files(out_dir)
        if images and not overwrite:
            raise MediaError(f"{out_dir}: holds {len(images)} images (from an earlier run?); pass --overwrite to "
                             "replace them, or choose an empty folder")


@contextmanager
def progress_bar(total: int, enabled: bool, *, unit: str = "frame",
                 description: str | None = None) -> Iterator[Callable[[int, int], None]]:
    """A tqdm bar on stderr (done/total, items per second, ETA) and the callback that moves it."""
    from tqdm import tqdm

    with tqdm(total=total, unit=unit, desc=description, disable=not enabled, file=sys.stderr, dynamic_ncols=True,
              smoothing=0.1) as bar:
        def update(done: int, _total: int) -> None:
            bar.update(done - bar.n)

        yield update


# ------------------------------------------------------------------------------------------------ images


def image_clip(paths: tuple[Path, Path]) -> vs.VideoNode:
    """Two stills as a 2-frame clip in one format: RGB (or GRAY) at the deeper of the two bit depths."""
    frames_ = [media.open_video(path) for path in paths]
    for path, clip in zip(paths, frames_, strict=True):
        if "_Alpha" in clip.get_frame(0).props:
            raise MediaError(frames.alpha_message(path))
    if (frames_[0].width, frames_[0].height) != (frames_[1].width, frames_[1].height):
        sizes = " and ".join(f"{clip.width}x{clip.height}" for clip in frames_)
        raise MediaError(f"the images differ in size ({sizes})")
    gray = all(clip.format.color_family == vs.GRAY for clip in frames_)
    bits = 8 if max(clip.format.bits_per_sample for clip in frames_) <= 8 else 16
    target = vs.core.query_video_format(vs.GRAY if gray else vs.RGB, vs.INTEGER, bits, 0, 0)
    converted = []
    for clip in frames_:
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


def frame_name(index: int, count: int) -> str:
    """frame_000.png, ...: at least three digits, as many as the last index needs."""
    return f"frame_{index:0{max(3, len(str(count - 1)))}d}.png"


def write_png_frames(clip: vs.VideoNode, out_dir: Path, *, overwrite: bool = False, progress: bool = True,
                     tags: encoding.VideoTags | None = None) -> list[Path]:
    """Write an RGB or GRAY clip (8 or 16 bits) as DIR/frame_NNN.png; with `overwrite`, the images that were in
    DIR before are removed once the new ones are complete. Returns the new files in order."""
    pixel_format, order = raw_pixel_format(clip.format)
    if order is not None:
        clip = vs.core.std.ShufflePlanes(clip, order, vs.RGB)
    out_dir.mkdir(parents=True, exist_ok=True)
    earlier = frames.image_files(out_dir)
    written: list[Path] = []
    # Frames go to a hidden folder beside their final names, then move over: no half-written set under DIR.
    with tempfile.TemporaryDirectory(prefix=".vsrife-partial-", dir=out_dir) as scratch:
        digits = len(frame_name(0, clip.num_frames)) - len("frame_.png")
        pattern = Path(scratch) / f"frame_%0{digits}d.png"
        raw = {"format": "rawvideo", "pix_fmt": pixel_format, "s": f"{clip.width}x{clip.height}", "framerate": 1}
        with progress_bar(clip.num_frames, progress) as update:
            encoding.encode(clip, pattern, y4m=False, input_options=raw, output_options={"start_number": 0},
                         tags=tags, progress=update, atomic=False)
        if overwrite:
            for old in earlier:
                old.unlink()
        for index in range(clip.num_frames):
            name = frame_name(index, clip.num_frames)
            os.replace(Path(scratch) / name, out_dir / name)
            written.append(out_dir / name)
    return written


def images(paths: tuple[Path, Path], exp: int, out_dir: Path, method: str, filter_args: dict[str, Any], *,
           gif: Path | None = None, mp4: Path | None = None, fps: Fraction = Fraction(25),
           overwrite: bool = False, progress: bool = True, warn: Callable[[str], None] = print) -> list[Path]:
    """Write the 2**exp + 1 frames from the first image to the second as PNGs in `out_dir` (and a GIF, an MP4)."""
    if exp < 1:
        raise MediaError("--exp must be at least 1")
    if method not in METHODS:
        raise MediaError(f"--method {method}: choose one of {', '.join(METHODS)}")
    for target in (gif, mp4):
        if target is not None:
            check_output(target, *paths, overwrite=overwrite)
    check_folder_output(out_dir, overwrite=overwrite)
    pair = image_clip(paths)
    steps = 2**exp
    try:
        if "mask" in filter_args:  # a file, as the command line gives it
            filter_args = {**filter_args, "mask": frames.open_mask(filter_args["mask"])}
        clip = getattr(vs.core.vfi, METHODS[method].filter)(pair, multi=steps, **filter_args)[: steps + 1]
    except vs.Error as exc:
        raise MediaError(str(exc)) from None
    written = write_png_frames(clip, out_dir, overwrite=overwrite, progress=progress)
    digits = len(frame_name(0, len(written))) - len("frame_.png")
    frames_in = ffmpeg.input(str(out_dir / f"frame_%0{digits}d.png"), framerate=_rate(fps), start_number=0)
    if gif is not None:
        split = frames_in.video.split()
        palette = split[0].filter("palettegen")
        paletted = ffmpeg.filter([split[1], palette], "paletteuse")
        encoding.run_into(ffmpeg.output(paletted, str(encoding.partial_path(gif)), f="gif"), gif)
    if mp4 is not None:
        if clip.width % 2 or clip.height % 2:
            warn(f"{mp4.name}: H.264 in 4:2:0 needs an even size: the {clip.width}x{clip.height} frames are padded "
                 f"to {clip.width + clip.width % 2}x{clip.height + clip.height % 2} with black")
        even = frames_in.video.filter("pad", "ceil(iw/2)*2", "ceil(ih/2)*2")
        encoding.run_into(ffmpeg.output(even, str(encoding.partial_path(mp4)), vcodec="libx264", crf=16,
                                  pix_fmt="yuv420p", f="mp4"), mp4)
    return written
