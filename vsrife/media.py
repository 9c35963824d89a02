"""Media I/O for the command line: reading a source's timing and colour, and encoding a clip through ffmpeg.

Decoding is BestSource's (`core.bs.VideoSource`); encoding is ffmpeg's, fed frames as YUV4MPEG through a pipe, its
command line built with ffmpeg-python. The output is written under a temporary name beside the target and renamed
only when ffmpeg has finished it, so an interrupted or failed run leaves nothing under the target's name.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache
from pathlib import Path
from types import FrameType
from typing import IO, Any

import ffmpeg
import vapoursynth as vs

from .errors import VfiError
from .ffmpeg_binary import find_ffmpeg

# Frame-time jitter up to this much (containers round timestamps to 1 ms) still counts as a constant rate.
TIMESTAMP_TOLERANCE_MS = 1.5
# A variable-rate source is converted to its average rate, snapped to one of these when within 1 % of it.
COMMON_RATES = tuple(Fraction(n, d) for n, d in ((24000, 1001), (24, 1), (25, 1), (30000, 1001), (30, 1),
                                                  (48, 1), (50, 1), (60000, 1001), (60, 1), (120, 1)))
# Seconds that ffmpeg gets to finish or stop before it is killed.
FFMPEG_STOP_SECONDS = 5.0


class MediaError(VfiError, ValueError):
    """A source, codec or output that cannot be used; the message is meant for the user."""


@cache
def ffmpeg_executable() -> str:
    """The ffmpeg on PATH, else the one bundled with imageio-ffmpeg."""
    found = find_ffmpeg()
    if found is None:
        raise MediaError("ffmpeg not found: put it on PATH or `pip install imageio-ffmpeg`")
    return found


def ffmpeg_command(stream: Any, *global_args: str) -> list[str]:
    """The command line of an ffmpeg-python output: quiet but for errors, overwriting, never reading the terminal."""
    return (stream.global_args("-nostdin", "-loglevel", "error", *global_args).overwrite_output()
            .compile(cmd=ffmpeg_executable()))


@cache
def video_encoders() -> frozenset[str]:
    """Names of the video encoders this ffmpeg has."""
    listing = subprocess.run([ffmpeg_executable(), "-hide_banner", "-encoders"], capture_output=True, text=True,
                             check=False).stdout
    return frozenset(line.split()[1] for line in listing.splitlines()
                     if line.startswith(" V") and len(line.split()) > 1)


# ------------------------------------------------------------------------------------------------ sources


@dataclass(frozen=True)
class SourceInfo:
    """What the command line needs to know about an input video before building its graph."""

    path: Path
    fps: Fraction
    num_frames: int
    variable_rate: bool
    shortest_ms: float
    longest_ms: float
    rgb: bool  # YUV4MPEG cannot carry it: the graph converts the result to YUV
    colour: dict[str, int | str]  # options of ffmpeg's setparams filter that keep the source's colour description


def open_video(path: Path, **options: Any) -> vs.VideoNode:
    """The video track of `path` through BestSource, or a MediaError saying why it cannot be read."""
    if not path.exists():
        raise MediaError(f"{path}: no such file")
    if not path.is_file():
        raise MediaError(f"{path}: not a file")
    if not hasattr(vs.core, "bs"):
        raise MediaError("BestSource is not installed: pip install vapoursynth-bestsource")
    try:
        return vs.core.bs.VideoSource(str(path), **options)
    except vs.Error as exc:
        reason = str(exc).removeprefix("VideoSource: ")
        raise MediaError(f"{path}: not a video BestSource can read ({reason})") from None


def probe(path: Path) -> SourceInfo:
    """Rate, length, constancy of the rate and colour of `path`'s video track."""
    with tempfile.TemporaryDirectory(prefix="vsrife-") as scratch:
        timecodes = Path(scratch) / "timecodes.txt"
        clip = open_video(path, timecodes=str(timecodes))
        stamps = [float(line) for line in timecodes.read_text().splitlines()[1:] if line.strip()]
    steps = [b - a for a, b in itertools.pairwise(stamps)] or [1000.0 * clip.fps_den / max(clip.fps_num, 1)]
    average = (stamps[-1] - stamps[0]) / (len(stamps) - 1) if len(stamps) > 1 else steps[0]
    variable = clip.fps_num == 0 or max(abs(step - average) for step in steps) > TIMESTAMP_TOLERANCE_MS
    return SourceInfo(path=path, fps=Fraction(clip.fps_num, clip.fps_den) if clip.fps_num else Fraction(0),
                      num_frames=clip.num_frames, variable_rate=variable, shortest_ms=min(steps),
                      longest_ms=max(steps), rgb=clip.format.color_family == vs.RGB,
                      colour=colour_options(clip.get_frame(0).props))


def constant_rate_for(info: SourceInfo) -> Fraction:
    """The constant rate a variable-rate source is converted to: its average, snapped to a common rate."""
    average = info.fps if info.fps > 0 else Fraction(1000) / Fraction(info.shortest_ms).limit_denominator(1000)
    for rate in COMMON_RATES:
        if abs(average / rate - 1) < 0.01:
            return rate
    return average.limit_denominator(1001)


def colour_options(props: Mapping[str, Any]) -> dict[str, int | str]:
    """setparams options for a frame's `_Matrix`, `_Primaries`, `_Transfer` and range (unspecified left out).

    A filter rather than output options: ffmpeg's encoders take the colour description from the frames, and
    YUV4MPEG frames carry none.
    """
    options: dict[str, int | str] = {}
    # VapourSynth and ffmpeg share ITU-T H.273's numbers for these; 2 is "unspecified" in all three.
    for prop, option in (("_Matrix", "colorspace"), ("_Primaries", "color_primaries"), ("_Transfer", "color_trc")):
        value = props.get(prop)
        if isinstance(value, int) and value != 2 and (value > 0 or prop == "_Matrix"):
            options[option] = int(value)
    if "_Range" in props:  # VapourSynth R74+: 0 limited, 1 full
        options["range"] = "pc" if int(props["_Range"]) == 1 else "tv"
    elif "_ColorRange" in props:  # older: 0 full, 1 limited
        options["range"] = "pc" if int(props["_ColorRange"]) == 0 else "tv"
    return options


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


def video_options(suffix: str, codec: str | None, crf: int | None, lossless: bool) -> dict[str, Any]:
    """ffmpeg output options for the video stream of a file named *suffix."""
    name = codec or DEFAULT_CODECS.get(suffix.lower(), DEFAULT_CODEC)
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


def check_container(suffix: str, options: Mapping[str, Any]) -> None:
    """A MediaError unless ffmpeg can write one tiny frame with these video options into a *suffix file."""
    if not suffix:
        raise MediaError("the output name needs an extension (.mp4, .mkv, .webm, ...): it picks the container")
    with tempfile.TemporaryDirectory(prefix="vsrife-") as scratch:
        frame = ffmpeg.input("color=size=64x64:duration=0.04", f="lavfi")
        trial = ffmpeg.output(frame, str(Path(scratch) / f"trial{suffix}"), frames=1, **options)
        result = subprocess.run(ffmpeg_command(trial), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        raise MediaError(f"ffmpeg cannot write {options.get('c:v')} video into a {suffix} file "
                         f"({lines[-1] if lines else 'no message'})")


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

    ffmpeg itself is asked, with a fraction of a second of each kind, whether the container takes the stream as
    it is; if not, the container's default encoder is tried, and subtitles that fit neither are left out.
    """
    source = companion.input()
    streams: list[Any] = []
    options: dict[str, Any] = {}
    for kind, plans in stream_plans(suffix).items():
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
           colour: Mapping[str, Any] | None = None, progress: Callable[[int, int], None] | None = None,
           atomic: bool = True) -> None:
    """Encode `node` into `output` with ffmpeg, atomically: ffmpeg writes a partial file that is renamed at the end.

    `node` goes to ffmpeg's stdin as YUV4MPEG (or raw planes with `y4m=False`, described by `input_options`);
    `streams` are further ffmpeg-python streams to map (audio, subtitles); `colour` tags the video's colour
    description (colour_options). `atomic=False` writes `output` itself
    (an image pattern, say, inside a folder that the caller renames).
    """
    partial = partial_path(output) if atomic else output
    video = ffmpeg.input("pipe:", **({"format": "yuv4mpegpipe"} if y4m else dict(input_options or {}))).video
    if colour:
        video = video.filter("setparams", **colour)
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


def count_video_frames(path: Path) -> int:
    """Frames of the first video stream of `path`, counted by ffmpeg from its packets (nothing is decoded)."""
    count = ffmpeg.output(ffmpeg.input(str(path))["v:0"], "-", c="copy", f="null")
    result = subprocess.run(ffmpeg_command(count, "-nostats", "-progress", "pipe:1"), capture_output=True,
                            text=True, check=False)
    frames = [line.removeprefix("frame=") for line in result.stdout.splitlines() if line.startswith("frame=")]
    if result.returncode != 0 or not frames:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        raise MediaError(f"ffmpeg cannot read {path.name}: {' / '.join(lines[-3:]) or 'no message'}")
    return int(frames[-1])


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
