"""Media output for the command line: encoder options, and encoding through ffmpeg.

ffmpeg is fed frames as YUV4MPEG through a pipe (RGB as raw planes, which YUV4MPEG cannot carry), its command
line built with ffmpeg-python. The output is written under a temporary name beside the target and renamed only when
ffmpeg has finished it, so an interrupted or failed run leaves nothing under the target's name.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

import ffmpeg
import vapoursynth as vs

from .errors import MediaError
from .ffmpeg_binary import ffmpeg_command, ffmpeg_executable, ffmpeg_input_options, video_encoders
from .hdr import HdrMetadata
from .listing import StreamEntry
from .tags import VideoTags

# Seconds that ffmpeg gets to finish or stop before it is killed.
FFMPEG_STOP_SECONDS = 5.0


# ------------------------------------------------------------------------------------------------ codecs


@dataclass(frozen=True)
class Codec:
    """How to ask one ffmpeg encoder for a quality level or for lossless output."""

    crf: int | None  # default constant-quality level; None: the encoder has no crf (it is lossless)
    lossless: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    crf_range: tuple[int, int] = (0, 51)  # the levels the encoder takes


CODECS: dict[str, Codec] = {
    "libx264": Codec(crf=16, lossless={"qp": 0}, extra={"preset": "medium"}),
    "libx264rgb": Codec(crf=16, lossless={"qp": 0}, extra={"preset": "medium"}),
    "libx265": Codec(crf=18, lossless={"x265-params": "lossless=1"}, extra={"preset": "medium"}),
    "libvpx-vp9": Codec(crf=30, lossless={"lossless": 1},
                        extra={"b:v": 0, "row-mt": 1, "deadline": "good", "cpu-used": 4}, crf_range=(0, 63)),
    "libsvtav1": Codec(crf=30, lossless={"svtav1-params": "lossless=1"}, crf_range=(1, 63)),
    "ffv1": Codec(crf=None, lossless={}, extra={"level": 3}),
}
DEFAULT_CODECS = {".webm": "libvpx-vp9"}
DEFAULT_CODEC = "libx264"
# The default for sources of more than 8 bits or with an HDR transfer: HEVC Main 10 / Main 12 / RExt, what HDR10
# players expect (H.264 High 10 keeps the bits but few players decode it).
DEFAULT_DEEP_CODEC = "libx265"
# ProRes profiles as ffmpeg's dump names them -> the encoders' -profile:v: a quality tier the output keeps.
PRORES_PROFILES = {"Proxy": "proxy", "LT": "lt", "Standard": "standard", "HQ": "hq", "4444": "4444",
                   "XQ": "4444xq"}


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
        if known is not None and not known.crf_range[0] <= crf <= known.crf_range[1]:
            low, high = known.crf_range
            raise MediaError(f"--crf {crf}: {name} takes {low} (best) to {high}")
        options["crf"] = crf
    elif known is not None and known.crf is not None:
        options["crf"] = known.crf
    return options


def lossless_codec(options: Mapping[str, Any], lossless: bool) -> bool:
    """The video is written lossless: --lossless, or an encoder that has no other mode (ffv1)."""
    known = CODECS.get(str(options.get("c:v")))
    return lossless or (known is not None and known.crf is None)


def keep_profile(options: dict[str, Any], video: StreamEntry | None) -> dict[str, Any]:
    """The options with the source's ProRes profile (a quality tier) when a ProRes source goes into a ProRes
    encoder, which would otherwise pick its own."""
    encodes = video_encoders().get(str(options.get("c:v")))
    if video is None or video.codec != "prores" or encodes != "prores" or "profile:v" in options:
        return options
    profile = PRORES_PROFILES.get(video.profile or "")
    return options if profile is None else options | {"profile:v": profile}


def hdr_tags(hdr: HdrMetadata, options: dict[str, Any]) -> tuple[HdrMetadata | None, dict[str, Any]]:
    """How HDR10 metadata reaches the output: as ffmpeg input options (encoder and container) where this ffmpeg has
    them, else as x265 parameters (bitstream only); a MediaError where neither can carry it."""
    if "mastering_display" in ffmpeg_input_options():
        return hdr, options
    if options.get("c:v") == "libx265":
        params = [options["x265-params"]] if options.get("x265-params") else []
        params += [f"master-display={hdr.mastering_display}"] if hdr.mastering_display else []
        params += [f"max-cll={hdr.content_light}"] if hdr.content_light else []
        return None, options | {"x265-params": ":".join(params)}
    raise MediaError(f"this ffmpeg ({ffmpeg_executable()}) cannot give {options.get('c:v')} the source's HDR10 "
                     f"metadata ({hdr.describe()}); use --codec libx265, or an ffmpeg whose `ffmpeg -h full` "
                     "lists -mastering_display (imageio-ffmpeg's 9.0 does)")


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


def raw_pixel_format(clip_format: vs.VideoFormat) -> tuple[str, list[int] | None]:
    """ffmpeg's name for the clip's planar format and the plane order it expects (RGB clips: G, B, R)."""
    depth = "" if clip_format.bits_per_sample == 8 else f"{clip_format.bits_per_sample}le"
    if clip_format.color_family == vs.GRAY:
        return f"gray{depth}", None
    return f"gbrp{depth}", [1, 2, 0]


def raw_frames(node: vs.VideoNode) -> tuple[vs.VideoNode, dict[str, Any]]:
    """The clip as raw planes in ffmpeg's order, and the input options that describe them."""
    pixel_format, order = raw_pixel_format(node.format)
    if order is not None:
        node = vs.core.std.ShufflePlanes(node, order, vs.RGB)
    rate = f"{node.fps_num}/{node.fps_den}" if node.fps_num else "1"
    return node, {"format": "rawvideo", "pix_fmt": pixel_format, "s": f"{node.width}x{node.height}",
                  "framerate": rate}


def encode(node: vs.VideoNode, output: Path, *, y4m: bool = True, streams: Sequence[Any] = (),
           output_options: Mapping[str, Any] | None = None, tags: VideoTags | None = None,
           progress: Callable[[int, int], None] | None = None, atomic: bool = True) -> None:
    """Encode `node` into `output` with ffmpeg, atomically: ffmpeg writes a partial file that is renamed at the end.

    `node` goes to ffmpeg's stdin as YUV4MPEG (as raw planes: RGB, which YUV4MPEG cannot carry, and any clip with
    `y4m=False`); `streams` are further ffmpeg-python streams to map (audio, subtitles); `tags` carry what the
    frames do not (colour description, pixel aspect ratio, HDR10 metadata, start, padding). `atomic=False` writes
    `output` itself (an image pattern, say, inside a folder that the caller renames).
    """
    partial = partial_path(output) if atomic else output
    tags = tags or VideoTags()
    piped: dict[str, Any] = {"format": "yuv4mpegpipe"}
    if not y4m or node.format.color_family == vs.RGB:
        node, piped = raw_frames(node)
        y4m = False
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
           output_options: Mapping[str, Any] | None = None, start_s: float = 0.0) -> None:
    """Join video files of one encoding in order, without re-encoding, adding `streams`, the video shown from
    `start_s`; atomically, as encode."""
    with tempfile.TemporaryDirectory(prefix="vsrife-") as scratch:
        listing = Path(scratch) / "parts.txt"
        # The concat demuxer's quoting: a quote inside a quoted name is written '\''
        listing.write_text("".join("file '{}'\n".format(str(part.resolve()).replace("'", "'\\''"))
                                   for part in parts))
        video = ffmpeg.input(str(listing), f="concat", safe=0, **VideoTags(start_s=start_s).input_options())["v:0"]
        options = {**dict(output_options or {}), "c:v": "copy"}
        run_into(ffmpeg.output(video, *streams, str(partial_path(output)), **options), output)
