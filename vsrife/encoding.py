"""Media output for the command line: encoder options, what the frames do not carry, and encoding through ffmpeg.

ffmpeg is fed frames as YUV4MPEG through a pipe, its command line built with ffmpeg-python. The output is written
under a temporary name beside the target and renamed only when ffmpeg has finished it, so an interrupted or failed
run leaves nothing under the target's name.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import FrameType
from typing import IO, Any

import ffmpeg
import vapoursynth as vs

from . import media
from .media import HdrMetadata, MediaError, ffmpeg_command, ffmpeg_executable, list_streams, video_encoders

# Seconds that ffmpeg gets to finish or stop before it is killed.
FFMPEG_STOP_SECONDS = 5.0


# ------------------------------------------------------------------------------------------------ codecs


@dataclass(frozen=True)
class Codec:
    """How to ask one ffmpeg encoder for a quality level or for lossless output."""

    crf: int | None  # default constant-quality level; None: the encoder has no crf
    lossless: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


CODECS: dict[str, Codec] = {
    "libx264": Codec(crf=16, lossless={"qp": 0}, extra={"preset": "medium"}),
    "libx265": Codec(crf=18, lossless={"x265-params": "lossless=1"}, extra={"preset": "medium"}),
    "libvpx-vp9": Codec(crf=30, lossless={"lossless": 1},
                        extra={"b:v": 0, "row-mt": 1, "deadline": "good", "cpu-used": 4}),
    "libsvtav1": Codec(crf=30, lossless={"svtav1-params": "lossless=1"}),
    "ffv1": Codec(crf=None, lossless={}, extra={"level": 3}),
}
DEFAULT_CODECS = {".webm": "libvpx-vp9"}
DEFAULT_CODEC = "libx264"
# Said when nothing is: ffmpeg then picks the container's own default encoder for the stream.
CONTAINER_DEFAULT: dict[str, Any] = {}
# Text subtitles for containers that have no default subtitle encoder in ffmpeg.
SUBTITLE_CODECS = {".mp4": "mov_text", ".m4v": "mov_text", ".mov": "mov_text", ".webm": "webvtt"}


# The default for sources of more than 8 bits or with an HDR transfer: HEVC Main 10 / Main 12 / RExt, what HDR10
# players expect (H.264 High 10 keeps the bits but few players decode it).
DEFAULT_DEEP_CODEC = "libx265"


def video_options(suffix: str, codec: str | None, crf: int | None, lossless: bool,
                  deep: bool = False) -> dict[str, Any]:
    """ffmpeg output options for the video stream of a file named *suffix (`deep`: a source of more than 8 bits
    or an HDR one)."""
    name = codec or DEFAULT_CODECS.get(suffix.lower(), DEFAULT_DEEP_CODEC if deep else DEFAULT_CODEC)
    if name not in video_encoders():
        raise MediaError(f"--codec {name}: this ffmpeg has no such video encoder "
                         f"(`{ffmpeg_executable()} -encoders` lists them)")
    known = CODECS.get(name)
    options: dict[str, Any] = {"c:v": name, **(known.extra if known else {})}
    if lossless:
        if known is None:
            raise MediaError(f"--lossless: not known for {name}; use one of {', '.join(CODECS)}")
        if crf is not None:
            raise MediaError("--crf and --lossless exclude each other")
        return options | known.lossless
    if crf is not None:
        if known is not None and known.crf is None:
            raise MediaError(f"--crf: {name} has no quality level (it is lossless)")
        options["crf"] = crf
    elif known is not None and known.crf is not None:
        options["crf"] = known.crf
    return options


@dataclass(frozen=True)
class VideoTags:
    """What YUV4MPEG frames do not carry and ffmpeg is told beside them: the colour description, the pixel aspect
    ratio and HDR10 static metadata; and padding to a size the encoder takes."""

    colour: dict[str, int | str] = field(default_factory=dict)  # setparams options (colour_options)
    sar: Fraction | None = None
    hdr: HdrMetadata | None = None  # given to ffmpeg as input options: the encoder and the container take it
    pad: tuple[int, int] = (0, 0)  # columns on the right, rows at the bottom, repeating the edge pixels

    def input_options(self) -> dict[str, str]:
        if self.hdr is None:
            return {}
        options = {"mastering_display": self.hdr.mastering_display, "content_light": self.hdr.content_light}
        return {key: value for key, value in options.items() if value}

    def filtered(self, video: Any) -> Any:
        """The ffmpeg-python video stream with the tags applied (filters: encoders read these from the frames)."""
        if self.colour:
            video = video.filter("setparams", **self.colour)
        if self.sar is not None:
            video = video.filter("setsar", sar=f"{self.sar.numerator}/{self.sar.denominator}",
                                 max=max(self.sar.numerator, self.sar.denominator, 100))
        if any(self.pad):
            right, bottom = self.pad
            video = video.filter("pad", f"iw+{right}", f"ih+{bottom}").filter(
                "fillborders", right=right, bottom=bottom, mode="smear")
        return video


def hdr_tags(hdr: HdrMetadata, options: dict[str, Any]) -> tuple[HdrMetadata | None, dict[str, Any]]:
    """How HDR10 metadata reaches the output: as ffmpeg input options (encoder and container) where this ffmpeg has
    them, else as x265 parameters (bitstream only); a MediaError where neither can carry it."""
    if "mastering_display" in media.ffmpeg_input_options():
        return hdr, options
    if options.get("c:v") == "libx265":
        params = [options["x265-params"]] if options.get("x265-params") else []
        params += [f"master-display={hdr.mastering_display}"] if hdr.mastering_display else []
        params += [f"max-cll={hdr.content_light}"] if hdr.content_light else []
        return None, options | {"x265-params": ":".join(params)}
    raise MediaError(f"this ffmpeg ({ffmpeg_executable()}) cannot give {options.get('c:v')} the source's HDR10 "
                     f"metadata ({hdr.describe()}); use --codec libx265, or an ffmpeg whose `ffmpeg -h full` "
                     "lists -mastering_display (imageio-ffmpeg's 9.0 does)")


@dataclass(frozen=True)
class EncoderFit:
    """How the encoder stores the frames: its pixel format, and the padding it needs."""

    pixel_format: str
    pad: tuple[int, int] = (0, 0)


def check_container(suffix: str, options: Mapping[str, Any], *, width: int = 64, height: int = 64,
                    pix_fmt: str = "yuv420p", tags: VideoTags | None = None) -> EncoderFit:
    """Whether ffmpeg can write one frame of this size and pixel format with these options into a *suffix file,
    and how it stores it; a MediaError if it cannot (padding an odd size to an even one is tried first)."""
    if not suffix:
        raise MediaError("the output name needs an extension (.mp4, .mkv, .webm, ...): it picks the container")
    tags = tags or VideoTags()
    failure = ""
    odd = (width % 2, height % 2)
    for pad in [(0, 0), odd] if any(odd) else [(0, 0)]:
        with tempfile.TemporaryDirectory(prefix="vsrife-") as scratch:
            trial_path = Path(scratch) / f"trial{suffix}"
            frame = ffmpeg.input(f"color=size={width}x{height}:duration=0.04", f="lavfi", **tags.input_options())
            video = VideoTags(tags.colour, tags.sar, None, pad).filtered(frame.video.filter("format", pix_fmt))
            trial = ffmpeg.output(video, str(trial_path), frames=1, **options)
            result = subprocess.run(ffmpeg_command(trial), capture_output=True, text=True, check=False)
            if result.returncode == 0:
                return EncoderFit(_stored_pixel_format(trial_path) or pix_fmt, pad)
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        failure = failure or (lines[-1] if lines else "no message")
    raise MediaError(f"ffmpeg cannot write {options.get('c:v')} video of {width}x{height} {pix_fmt} into a "
                     f"{suffix} file ({failure})")


def _stored_pixel_format(path: Path) -> str | None:
    dump = subprocess.run([ffmpeg_executable(), "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True,
                          text=True, check=False, errors="replace").stderr
    found = re.search(r"Video: [^,]*, (\w+)", dump)
    return found.group(1) if found else None


# Containers that store times in milliseconds: above this rate, frames would share a timestamp.
MILLISECOND_CONTAINERS = (".mkv", ".webm", ".mka", ".mk3d")
MILLISECOND_MAX_FPS = 1000


# ------------------------------------------------------------------------------------------------ encoding


@dataclass(frozen=True)
class Companion:
    """The input file whose audio and subtitles go into the output, cut to the rendered range."""

    path: Path
    start_s: float = 0.0
    duration_s: float | None = None

    def input(self) -> Any:
        options: dict[str, Any] = {"ss": f"{self.start_s:.6f}"} if self.start_s else {}
        if self.duration_s is not None:
            options["t"] = f"{self.duration_s:.6f}"
        return ffmpeg.input(str(self.path), **options)


def stream_plans(suffix: str) -> dict[str, tuple[dict[str, Any] | None, ...]]:
    """Per stream kind, the codec options to try in order; the first the container accepts wins, None drops them."""
    subtitles = SUBTITLE_CODECS.get(suffix.lower())
    return {
        "a": ({"c:a": "copy"}, CONTAINER_DEFAULT),
        "s": ({"c:s": "copy"}, {"c:s": subtitles} if subtitles else CONTAINER_DEFAULT, None),
    }


def companion_plan(companion: Companion, suffix: str, warn: Callable[[str], None]) -> tuple[list[Any], dict[str, Any]]:
    """The audio/subtitle streams to map from the companion and their codec options for a *suffix container.

    Only kinds the companion has are planned. ffmpeg itself is asked, with a fraction of a second of each kind,
    whether the container takes the stream as it is; if not, the container's default encoder is tried, and
    subtitles that fit neither are left out. Matroska outputs also get the attachments (fonts of ASS subtitles);
    every output gets the companion's global metadata (title, ...). With a cut end, subtitle cues are cut there too.
    """
    listing = list_streams(companion.path)
    source = companion.input()
    streams: list[Any] = []
    options: dict[str, Any] = {}
    names = {"a": "audio", "s": "subtitle"}
    for kind, plans in stream_plans(suffix).items():
        if names[kind] not in listing.kinds:
            continue
        for plan in plans:
            if plan is None:
                warn(f"the subtitles of {companion.path.name} do not fit a {suffix} file; they are left out")
                break
            if _container_accepts(companion, kind, plan, suffix):
                streams.append(source[f"{kind}?"])
                options |= plan
                if "copy" not in plan.values():
                    what = "audio" if kind == "a" else "subtitles"
                    warn(f"the {what} of {companion.path.name} cannot be copied into a {suffix} file; converting")
                break
        else:
            raise MediaError(f"the audio of {companion.path.name} cannot be stored in a {suffix} file")
    if "attachment" in listing.kinds:
        if suffix.lower() in MILLISECOND_CONTAINERS:
            streams.append(source["t?"])
            options["c:t"] = "copy"
        else:
            warn(f"the attachments of {companion.path.name} (fonts, images) fit only a Matroska file; "
                 f"they are left out of the {suffix} file")
    if streams:
        options["map_metadata"] = "1"  # input 0 is the pipe of frames
    if companion.duration_s is not None and streams:
        options["t"] = f"{companion.duration_s:.6f}"  # drops what starts after the cut
        if "subtitle" in listing.kinds:
            # and ends the cues that start before it there: ffmpeg keeps their full duration
            options["bsf:s"] = f"setts=duration=min(DURATION\\,max(0\\,{companion.duration_s:.6f}/TB-PTS))"
    return streams, options


def _container_accepts(companion: Companion, kind: str, plan: Mapping[str, Any], suffix: str) -> bool:
    with tempfile.TemporaryDirectory(prefix="vsrife-") as scratch:
        trial = ffmpeg.output(companion.input()[f"{kind}?"], str(Path(scratch) / f"trial{suffix}"), t=0.2, **plan)
        return subprocess.run(ffmpeg_command(trial), capture_output=True, check=False).returncode == 0


def partial_path(output: Path) -> Path:
    """The temporary name beside `output` that a file is written under until it is complete."""
    return output.with_name(f".{output.stem}.partial{output.suffix}")


class Interrupted(KeyboardInterrupt):
    """The user stopped the run (SIGINT or SIGTERM; `signum` says which); a KeyboardInterrupt, so nothing eats it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into Interrupted, raised at the next Python step (at the latest the next frame)."""
    def handler(signum: int, _frame: FrameType | None) -> None:
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def encode(node: vs.VideoNode, output: Path, *, y4m: bool = True, input_options: Mapping[str, Any] | None = None,
           streams: Sequence[Any] = (), output_options: Mapping[str, Any] | None = None,
           tags: VideoTags | None = None, progress: Callable[[int, int], None] | None = None,
           atomic: bool = True) -> None:
    """Encode `node` into `output` with ffmpeg, atomically: ffmpeg writes a partial file that is renamed at the end.

    `node` goes to ffmpeg's stdin as YUV4MPEG (or raw planes with `y4m=False`, described by `input_options`);
    `streams` are further ffmpeg-python streams to map (audio, subtitles); `tags` carry what the frames do not
    (colour description, pixel aspect ratio, HDR10 metadata, padding). `atomic=False` writes `output` itself
    (an image pattern, say, inside a folder that the caller renames).
    """
    partial = partial_path(output) if atomic else output
    tags = tags or VideoTags()
    piped = {"format": "yuv4mpegpipe"} if y4m else dict(input_options or {})
    video = tags.filtered(ffmpeg.input("pipe:", **piped, **tags.input_options()).video)
    command = ffmpeg_command(ffmpeg.output(video, *streams, str(partial), **dict(output_options or {})), "-nostats")
    with tempfile.TemporaryFile() as log:
        # Its own session: a Ctrl-C in the terminal reaches only us, and we stop ffmpeg in order.
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log,
                                   start_new_session=True)
        try:
            with stop_on_signals():
                written = _write_frames(node, process, y4m, progress)
                if process.wait() != 0 or not written:
                    raise MediaError(f"ffmpeg failed: {_last_lines(log)}")
            if atomic:
                os.replace(partial, output)
        except BaseException:
            _stop(process)
            if atomic:
                partial.unlink(missing_ok=True)
            raise


def _write_frames(node: vs.VideoNode, process: subprocess.Popen[bytes], y4m: bool,
                  progress: Callable[[int, int], None] | None) -> bool:
    """Send every frame; False when ffmpeg stopped reading (its own message then says why)."""
    stdin: IO[bytes] = process.stdin  # type: ignore[assignment]
    try:
        node.output(stdin, y4m=y4m, progress_update=progress)
        stdin.close()
    except (BrokenPipeError, vs.Error) as exc:
        if isinstance(exc, BrokenPipeError) or process.poll() is not None:
            return False
        raise
    return True


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.stdin is not None and not process.stdin.closed:
        try:
            process.stdin.close()
        except BrokenPipeError:
            pass
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(FFMPEG_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _last_lines(log: IO[bytes], count: int = 3) -> str:
    log.seek(0)
    lines = [line.strip() for line in log.read().decode(errors="replace").splitlines() if line.strip()]
    return " / ".join(lines[-count:]) or "no message"


def run_into(stream: Any, target: Path) -> None:
    """Run a finished ffmpeg-python graph that writes partial_path(target), then rename it to `target`."""
    partial = partial_path(target)
    try:
        result = subprocess.run(ffmpeg_command(stream), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            raise MediaError(f"ffmpeg failed writing {target.name}: {' / '.join(lines[-3:]) or 'no message'}")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def concat(parts: Sequence[Path], output: Path, *, streams: Sequence[Any] = (),
           output_options: Mapping[str, Any] | None = None) -> None:
    """Join video files of one encoding in order, without re-encoding, adding `streams`; atomically, as encode."""
    with tempfile.TemporaryDirectory(prefix="vsrife-") as scratch:
        listing = Path(scratch) / "parts.txt"
        # The concat demuxer's quoting: a quote inside a quoted name is written '\''
        listing.write_text("".join("file '{}'\n".format(str(part.resolve()).replace("'", "'\\''"))
                                   for part in parts))
        video = ffmpeg.input(str(listing), f="concat", safe=0)["v:0"]
        options = {**dict(output_options or {}), "c:v": "copy"}
        run_into(ffmpeg.output(video, *streams, str(partial_path(output)), **options), output)
