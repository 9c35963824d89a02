"""`python -m vsrife interpolate --cluster`: one job's output frames rendered in chunks by Ray tasks, then joined.

A chunk is a range of output frames of the very graph that `python -m vsrife script` prints, so each of its
interpolated frames still requests exactly its two source frames and the joined file holds the frames one machine
would make. Chunks start where t = 0 (an output frame that is a source frame), on a scene cut where one is near.
Every task encodes its range into its own file (which starts with a keyframe) and counts the frames it wrote; the
driver copies the files, in order, into OUTPUT with the source's audio and subtitles, as `interpolate` does.
Every chunk renders with the same torch thread count (`--threads`, default 1) in a worker process started for that
count, so the joined file equals a single run given the same `--threads` on the same kind of CPU, frame for frame.
Ray (the `cluster` extra) is imported only here and only when a cluster is asked for.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
import vapoursynth as vs

from . import encoding
from .containers import MILLISECOND_MAX_FPS
from .damage import count_video_frames
from .errors import MediaError
from .output_settings import output_settings
from .parameters import SC_THRESHOLD
from .planning import Plan
from .progress import progress_bar
from .render import build
from .scene import scene_change_metric
from .script import GraphSpec, run_script, source_text
from .tags import VideoTags
from .threads import check_threads, pin_threads

DEFAULT_CHUNK_FRAMES = 1000
# Ray reruns a chunk whose worker process or node died this many times before the job fails.
CHUNK_RETRIES = 3
# A boundary may move by up to a quarter of a chunk, and at most this many source frames, to land on a scene cut.
SCENE_SEARCH_SOURCE_FRAMES = 24
# Matroska stores every encoder's output; the join copies the streams into OUTPUT's container.
CHUNK_SUFFIX = ".mkv"
# Seconds to wait for a cluster's head to accept a connection.
CONNECT_TIMEOUT_S = 10.0
# Seconds between progress reports of a chunk, and between the driver's looks at them.
PROGRESS_INTERVAL_S = 0.5


# ------------------------------------------------------------------------------------------------ chunks


@dataclass(frozen=True)
class Chunk:
    """Output frames start .. stop - 1 of the job's graph."""

    index: int
    start: int
    stop: int

    @property
    def frames(self) -> int:
        return self.stop - self.start

    def describe(self) -> str:
        return f"chunk {self.index + 1} (output frames {self.start}-{self.stop - 1})"

    def filename(self) -> str:
        return f"chunk_{self.index:05d}{CHUNK_SUFFIX}"


ScoreCuts = Callable[[Sequence[int]], Mapping[int, float]]


def plan_chunks(total: int, factor: Fraction, chunk_frames: int, score_cuts: ScoreCuts | None = None,
                threshold: float = SC_THRESHOLD) -> list[Chunk]:
    """Split `total` output frames (output rate = factor x source rate) into chunks of about `chunk_frames`.

    Boundaries are output frames that sit exactly on a source frame: multiples of factor's numerator (the plugin's
    reduced rate: output frame n sits at source position n * den / num). Near each nominal boundary, `score_cuts`
    (source frame s -> the scene-change metric between frames s - 1 and s) may move it onto the strongest scene cut
    above `threshold` (the job's sc_threshold).
    """
    if chunk_frames < 1:
        raise MediaError(f"--chunk-frames {chunk_frames}: it must be at least 1")
    period = factor.numerator  # output frame n is source frame n * den / num exactly when num divides n
    size = max(period, round(chunk_frames / period) * period)
    nominal = list(range(size, total, size))
    boundaries = nominal
    if score_cuts is not None and nominal:
        reach = min(size // 4, SCENE_SEARCH_SOURCE_FRAMES * period // factor.denominator) // period * period
        windows = {b: [c for c in range(b - reach, b + reach + 1, period) if 0 < c < total] for b in nominal}
        scores = score_cuts(sorted({c * factor.denominator // period for window in windows.values()
                                    for c in window}))
        boundaries = []
        for b, window in windows.items():
            best = max(window, key=lambda c: (scores.get(c * factor.denominator // period, 0.0), -abs(c - b)))
            cut = scores.get(best * factor.denominator // period, 0.0) > threshold
            boundaries.append(best if cut else b)
    edges = [0, *sorted(set(boundaries)), total]
    return [Chunk(index, start, stop) for index, (start, stop) in enumerate(itertools.pairwise(edges))]


def scene_cut_scores(spec: GraphSpec, frames: Sequence[int]) -> dict[int, float]:
    """For each source frame s of the graph (s >= 1), the filter's scene-change metric between s - 1 and s, on the
    frames in RGB as the filter converts them (BT.709 where frame 0 names no matrix)."""
    wanted = [s for s in frames if s >= 1]
    if not wanted:
        return {}
    try:
        source = run_script(source_text(spec), f"<{spec.input.name}>")
    except vs.Error as exc:
        raise MediaError(str(exc)) from None
    wanted = [s for s in wanted if s < source.num_frames]
    if not wanted:
        return {}
    rgb = source
    if source.format.color_family != vs.RGB or source.format.sample_type != vs.FLOAT:
        unnamed = source.format.color_family == vs.YUV and source.get_frame(0).props.get("_Matrix", 2) == 2
        rgb = vs.core.resize.Bicubic(source, format=vs.RGBS, **({"matrix_in_s": "709"} if unnamed else {}))

    def tensor(n: int) -> torch.Tensor:
        frame = rgb.get_frame(n)
        return torch.from_numpy(np.stack([np.asarray(frame[p], dtype=np.float32) for p in range(3)]))[None]

    scores: dict[int, float] = {}
    previous: tuple[int, torch.Tensor] | None = None  # a window's frames are consecutive: each is read once
    for s in sorted(set(wanted)):
        before = previous[1] if previous is not None and previous[0] == s - 1 else tensor(s - 1)
        previous = (s, tensor(s))
        scores[s] = scene_change_metric(before, previous[1])
    return scores


# ------------------------------------------------------------------------------------------------ tasks


@dataclass(frozen=True)
class ChunkTimes:
    """Where a chunk's time went, measured by the task itself (clock seconds of the node it ran on)."""

    node: str
    started_at: float  # time.time() when the task began
    setup_s: float  # the script evaluated: imports, source opened, model loaded
    encode_s: float  # frames rendered and encoded
    check_s: float  # the written file's frames counted


class ProgressBoard:
    """Frames done per chunk, reported by the tasks (a Ray actor); a retried chunk starts again from 0."""

    def __init__(self, chunks: int) -> None:
        self.done = [0] * chunks

    def report(self, index: int, done: int) -> None:
        self.done[index] = done

    def total(self) -> int:
        return sum(self.done)


def render_chunk(spec: GraphSpec, chunk: Chunk, total: int, path: str, video_options: dict[str, Any],
                 tags: VideoTags, board: Any, threads: int) -> ChunkTimes:
    """A Ray task: encode the chunk's frames of the spec's graph into `path` with `threads` torch threads, and check
    that all of them are there."""
    started_at, started = time.time(), time.monotonic()
    pin_threads(threads)
    clip = build(spec)
    if clip.num_frames != total:
        raise MediaError(f"the graph has {clip.num_frames} output frames on {socket.gethostname()}, "
                         f"the driver planned {total}")
    built = time.monotonic()
    last_report = 0.0

    def report(done: int, frames: int) -> None:
        nonlocal last_report
        if done == frames or time.monotonic() - last_report >= PROGRESS_INTERVAL_S:
            board.report.remote(chunk.index, done)
            last_report = time.monotonic()

    encoding.encode(clip[chunk.start:chunk.stop], Path(path), output_options=video_options, tags=tags,
                    progress=report)
    encoded = time.monotonic()
    written = count_video_frames(Path(path))
    if written != chunk.frames:
        raise MediaError(f"the encoded file holds {written} frames, not {chunk.frames}")
    return ChunkTimes(node=socket.gethostname(), started_at=started_at, setup_s=built - started,
                      encode_s=encoded - built, check_s=time.monotonic() - encoded)


# ------------------------------------------------------------------------------------------------ driver


def import_ray(local: bool) -> ModuleType:
    """Ray, or a MediaError naming the install command."""
    if local and "ray" not in sys.modules:
        # Ray reads this when imported: a runtime for this machine alone listens on the loopback interface only.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise MediaError("--cluster needs Ray: pip install 'vapoursynth-vfi[cluster]'") from None
    return ray


@contextmanager
def connected(address: str) -> Iterator[ModuleType]:
    """Ray, connected to `address`: `local` starts a runtime on this machine unless this process already has one."""
    ray = import_ray(address == "local")
    if ray.is_initialized():
        yield ray
        return
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                               "logging_level": logging.ERROR}
    if address != "local":
        _check_reachable(address)
    try:
        if address == "local":
            ray.init(**options)
        else:
            ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise MediaError(f"--cluster {address}: cannot connect to a Ray cluster there ({message})") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _check_reachable(address: str) -> None:
    """A MediaError at once when nothing listens at host:port (Ray itself retries for minutes)."""
    host, separator, port = address.removeprefix("ray://").rpartition(":")
    if not separator or not port.isdigit():
        return  # `auto` and the other forms Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise MediaError(f"--cluster {address}: no Ray cluster answers there ({exc.strerror or exc}); "
                         "pass the address that `ray start --head` printed") from None


def task_options(ray: ModuleType, device: str, threads: int) -> dict[str, Any]:
    """Ray options for one chunk: a GPU when the filter runs on CUDA, else `threads` cores; and a worker process
    started with OMP_NUM_THREADS=`threads`, which only ever runs chunks of that thread count (a worker that torch
    was imported into keeps the thread count it started with in VapourSynth's threads)."""
    environment = {"runtime_env": {"env_vars": {"OMP_NUM_THREADS": str(threads)}}}
    requested = device.strip().lower()
    if requested.startswith("cuda:"):
        raise MediaError(f"--device {device}: on a cluster Ray gives each chunk one GPU; use --device cuda")
    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    gpus = max((node.get("GPU", 0.0) for node in nodes), default=0.0)
    if requested == "cuda" or (requested == "auto" and gpus >= 1):
        if gpus < 1:
            raise MediaError("--device cuda: no node of the Ray cluster has a GPU")
        return {"num_gpus": 1, "num_cpus": 1, **environment}
    cores = max((node.get("CPU", 0.0) for node in nodes), default=0.0)
    if threads > cores:
        raise MediaError(f"--threads {threads}: no node of the Ray cluster has that many CPUs (the largest has "
                         f"{cores:g})")
    return {"num_cpus": threads, **environment}


@dataclass
class ClusterReport:
    """What a cluster job did, for the summary line and the benchmark."""

    frames: int
    chunks: list[Chunk]
    times: list[ChunkTimes] = field(default_factory=list)
    submitted_at: float = 0.0  # time.time() when the tasks were submitted
    plan_s: float = 0.0  # output checked, companion streams probed, chunk boundaries placed
    connect_s: float = 0.0  # Ray started or joined
    join_s: float = 0.0  # the chunks copied into OUTPUT with the audio


def interpolate(plan_: Plan, output: Path, *, address: str = "local",
                chunk_frames: int = DEFAULT_CHUNK_FRAMES, threads: int = 1, codec: str | None = None,
                crf: int | None = None, lossless: bool = False, overwrite: bool = False, progress: bool = True,
                warn: Callable[[str], None] = print) -> ClusterReport:
    """`render.interpolate`, with the frames made by Ray tasks on the cluster at `address` (or `local`), each
    with `threads` torch threads."""
    import_ray(address == "local")  # before any work: a missing extra is the first thing to say
    check_threads(threads)
    if plan_.output_fps > MILLISECOND_MAX_FPS:
        raise MediaError(f"--cluster: {float(plan_.output_fps):.2f} fps is too fast for the Matroska chunks, which "
                         f"store times in milliseconds; ask for at most {MILLISECOND_MAX_FPS} fps")
    planning = time.monotonic()
    settings = output_settings(plan_, output, codec=codec, crf=crf, lossless=lossless, overwrite=overwrite,
                                      warn=warn)
    total = plan_.output_frames
    threshold = float(plan_.spec.filter_args.get("sc_threshold", SC_THRESHOLD))
    chunks = plan_chunks(total, plan_.spec.factor, chunk_frames, lambda frames: scene_cut_scores(plan_.spec, frames),
                         threshold)
    report = ClusterReport(frames=total, chunks=chunks, plan_s=time.monotonic() - planning)
    # Beside OUTPUT, on the storage every node reads and writes
    scratch = Path(tempfile.mkdtemp(prefix=f".{output.stem}.chunks-", dir=output.resolve().parent))
    try:
        began = time.monotonic()
        # Signals after connecting: ray.init installs its own SIGTERM handler
        with connected(address) as ray, encoding.stop_on_signals():
            options = task_options(ray, str(plan_.spec.filter_args.get("device", "auto")), threads)
            report.connect_s = time.monotonic() - began
            board = ray.remote(ProgressBoard).options(num_cpus=0).remote(len(chunks))
            task = ray.remote(render_chunk).options(max_retries=CHUNK_RETRIES, retry_exceptions=False, **options)
            report.submitted_at = time.time()
            chunk_tags = replace(settings.tags, start_s=0.0)  # the joined file starts the video where the source does
            refs = {task.remote(settings.spec_for(plan_.spec), chunk, total, str(scratch / chunk.filename()),
                                settings.video_options, chunk_tags, board, threads): chunk for chunk in chunks}
            report.times = _collect(ray, refs, board, total, progress)
            joining = time.monotonic()
            with settings.companion.file_options() as file_options:
                encoding.concat([scratch / chunk.filename() for chunk in chunks], output,
                                streams=settings.companion.streams, output_options=file_options,
                                start_s=settings.tags.start_s)
            report.join_s = time.monotonic() - joining
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return report


def _collect(ray: ModuleType, refs: dict[Any, Chunk], board: Any, total: int, progress: bool) -> list[ChunkTimes]:
    """Wait for every chunk while moving one progress bar; on the first failure cancel the rest and say which."""
    results: dict[int, ChunkTimes] = {}
    pending = list(refs)
    try:
        with progress_bar(total, progress) as update:
            while pending:
                ready, pending = ray.wait(pending, num_returns=len(pending), timeout=PROGRESS_INTERVAL_S)
                for ref in ready:
                    chunk = refs[ref]
                    try:
                        results[chunk.index] = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        raise MediaError(f"{chunk.describe()} failed: {_reason(ray, exc)}") from None
                update(ray.get(board.total.remote()), total)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    return [results[index] for index in sorted(results)]


def _reason(ray: ModuleType, exc: Exception) -> str:
    """One line: the task's own error, or what happened to the process or node that ran it."""
    if isinstance(exc, ray.exceptions.RayTaskError) and exc.cause is not None:
        cause = exc.cause
        text = str(cause)
    else:
        cause, text = exc, f"{type(exc).__name__} after {CHUNK_RETRIES} retries"
    return " ".join(text.split()) or type(cause).__name__
