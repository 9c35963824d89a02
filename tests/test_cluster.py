"""`interpolate --cluster`: a real Ray runtime on 127.0.0.1, real workers, real ffmpeg; joined output = one machine's.

One runtime serves the whole module: it is started here on the loopback interface, the in-process runs reuse it as
`--cluster local` does when this process already has one, and the subprocess runs join it by address. Frames are
compared only between runs with the same torch thread count (`--threads`): oneDNN does not promise the same bits
for another count (on Intel AMX CPUs it differs).
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import pytest

from conftest import ffmpeg_executable
from vsrife import cli, cluster
from vsrife.errors import MediaError
from vsrife.parameters import SC_THRESHOLD
from vsrife.script import GraphSpec

SOURCE_FRAMES = 100
CHUNK_FRAMES = 20
OUTPUT_FRAMES = 2 * SOURCE_FRAMES


def ffmpeg(*args: str | Path | int) -> None:
    subprocess.run([ffmpeg_executable(), "-hide_banner", "-loglevel", "error", "-y", *map(str, args)], check=True)


def stream_hashes(path: Path) -> list[str]:
    """SHA-256 per stream: of the decoded video frames, and of the audio packets as stored."""
    result = subprocess.run([ffmpeg_executable(), "-hide_banner", "-loglevel", "error", "-i", str(path),
                             "-map", "0:v", "-map", "0:a", "-c:a", "copy", "-f", "streamhash", "-hash", "sha256",
                             "-"], capture_output=True, text=True, check=True)
    return result.stdout.split()


def vsrife_process(*args: str | Path | int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "vsrife", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def chunk_workers() -> list[int]:
    """PIDs of Ray workers running a chunk now (Ray titles them after the task)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(b"ray::render_chunk"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # read when ray is imported: loopback only
    ray = cluster.import_ray(local=True)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    address = ray.get_runtime_context().gcs_address
    assert address.startswith("127.0.0.1:"), address
    yield address
    ray.shutdown()


@pytest.fixture(scope="module")
def sound_clip(tmp_path_factory: pytest.TempPathFactory, bikes_path: Path) -> Path:
    """The first 100 frames of bikes.mp4 (25 fps) with a 440 Hz tone."""
    path = tmp_path_factory.mktemp("cluster") / "bikes100.mp4"
    ffmpeg("-i", bikes_path, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-frames:v",
           SOURCE_FRAMES, "-t", f"{SOURCE_FRAMES / 25}", "-c:v", "libx264", "-crf", "20", "-c:a", "aac", path)
    return path


def single_run(source: Path, output: Path, threads: int) -> list[str]:
    """Stream hashes of `interpolate --lossless --threads N` without a cluster, in a process of its own."""
    result = subprocess.run([sys.executable, "-m", "vsrife", "interpolate", str(source), "-o", str(output),
                             "--lossless", "--threads", str(threads), "-q"], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    hashes = stream_hashes(output)
    assert [line.split(",")[1] for line in hashes] == ["v", "a"], hashes
    return hashes


@pytest.fixture(scope="module")
def one_machine(sound_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Stream hashes of a single run with one thread, the count a chunk renders with by default."""
    return single_run(sound_clip, tmp_path_factory.mktemp("one-machine") / "out.mp4", 1)


def test_local_cluster_joins_frame_identical_with_the_same_audio(
        ray_address: str, sound_clip: Path, one_machine: list[str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "out.mp4"
    code = cli.main(["interpolate", str(sound_clip), "-o", str(output), "--cluster", "local", "--chunk-frames",
                     str(CHUNK_FRAMES), "--lossless"])
    assert code == 0, capsys.readouterr().err
    assert f"{OUTPUT_FRAMES} frames from {OUTPUT_FRAMES // CHUNK_FRAMES} chunks" in capsys.readouterr().err
    assert stream_hashes(output) == one_machine
    assert leftovers(tmp_path) == []


def test_chunks_and_a_single_run_with_the_same_thread_count_give_the_same_frames(
        ray_address: str, sound_clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--threads 2 pins every chunk and the single run to two torch threads."""
    single = single_run(sound_clip, tmp_path / "single.mp4", 2)
    output = tmp_path / "out.mp4"
    code = cli.main(["interpolate", str(sound_clip), "-o", str(output), "--cluster", "local", "--chunk-frames",
                     str(2 * CHUNK_FRAMES), "--threads", "2", "--lossless", "-q"])
    assert code == 0, capsys.readouterr().err
    assert stream_hashes(output) == single
    assert leftovers(tmp_path) == []


def test_a_killed_worker_is_retried_and_the_output_is_still_identical(
        ray_address: str, sound_clip: Path, one_machine: list[str], tmp_path: Path) -> None:
    output = tmp_path / "out.mp4"
    run = vsrife_process("interpolate", sound_clip, "-o", output, "--cluster", ray_address, "--chunk-frames",
                         CHUNK_FRAMES, "--lossless", "-q")
    killed: list[int] = []
    deadline = time.monotonic() + 120
    # Kill a worker once a chunk is being encoded, mid-chunk
    while not killed and run.poll() is None and time.monotonic() < deadline:
        if any(scratch.iterdir() for scratch in tmp_path.glob(".out.chunks-*")):
            for pid in chunk_workers()[:1]:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        time.sleep(0.05)
    _, stderr = run.communicate(timeout=300)
    assert killed, "no chunk worker was seen running"
    assert run.returncode == 0, stderr
    assert stream_hashes(output) == one_machine
    assert leftovers(tmp_path) == []


def test_a_chunk_that_cannot_read_its_input_fails_the_job_by_name(
        ray_address: str, sound_clip: Path, tmp_path: Path) -> None:
    source = tmp_path / "source.mp4"
    source.write_bytes(sound_clip.read_bytes())
    output = tmp_path / "out.mp4"
    run = vsrife_process("interpolate", source, "-o", output, "--cluster", ray_address, "--chunk-frames",
                         CHUNK_FRAMES, "-q")
    # The driver has read the input once the chunk folder exists; the workers open it after that
    while run.poll() is None and not list(tmp_path.glob(".out.chunks-*")):
        time.sleep(0.01)
    (tmp_path / "garbage").write_text("not a video\n")
    os.replace(tmp_path / "garbage", source)
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 1, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: chunk "), stderr
    assert "(output frames " in lines[0] and str(source) in lines[0], stderr
    assert not output.exists()
    assert leftovers(tmp_path) == []


def test_interrupt_removes_the_chunks_and_stops_the_workers(
        ray_address: str, sound_clip: Path, tmp_path: Path) -> None:
    output = tmp_path / "out.mp4"
    run = vsrife_process("interpolate", sound_clip, "-o", output, "--cluster", ray_address, "--chunk-frames",
                         CHUNK_FRAMES, "-q")
    while run.poll() is None and not chunk_workers():
        time.sleep(0.05)
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 130, stderr
    assert "interrupted" in stderr
    assert not output.exists()
    assert leftovers(tmp_path) == []
    deadline = time.monotonic() + 10
    while chunk_workers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert chunk_workers() == []


def test_chunks_start_on_source_frames_and_cover_everything() -> None:
    for factor, total in ((Fraction(2), 200), (Fraction(5, 2), 247), (Fraction(60000, 24000), 1001)):
        chunks = cluster.plan_chunks(total, factor, 48)
        assert chunks[0].start == 0 and chunks[-1].stop == total
        assert all(a.stop == b.start for a, b in itertools.pairwise(chunks))
        # Output frame n is a source frame when n * den / num is whole
        assert all((chunk.start * factor.denominator) % factor.numerator == 0 for chunk in chunks)
        assert all(chunk.frames > 0 for chunk in chunks)
    with pytest.raises(MediaError, match="--chunk-frames 0"):
        cluster.plan_chunks(200, Fraction(2), 0)


def test_boundaries_move_onto_a_nearby_scene_cut(bikes_path: Path, bunny_path: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.mkv"  # 30 frames of bikes, then 30 of the bunny: a cut at source frame 30
    ffmpeg("-i", bikes_path, "-i", bunny_path, "-filter_complex",
           "[0:v]trim=end_frame=30,setpts=PTS-STARTPTS[a];[1:v]trim=end_frame=30,scale=640:272,setsar=1,"
           "setpts=PTS-STARTPTS[b];[a][b]concat=n=2:v=1[v]", "-map", "[v]", "-r", "25", "-c:v", "ffv1", cut)
    spec = GraphSpec(input=cut, method="rife", rate={"multi": 2}, factor=Fraction(2))
    scores = cluster.scene_cut_scores(spec, [29, 30, 31])
    assert scores[30] > SC_THRESHOLD > max(scores[29], scores[31])
    chunks = cluster.plan_chunks(120, Fraction(2), 50, lambda frames: cluster.scene_cut_scores(spec, frames))
    assert [chunk.start for chunk in chunks] == [0, 60, 100]  # 50 moved to the cut (source 30); 100 has none


def test_cluster_options_without_a_cluster_or_without_ray(sound_clip: Path, tmp_path: Path) -> None:
    lone = subprocess.run([sys.executable, "-m", "vsrife", "interpolate", str(sound_clip), "-o",
                           str(tmp_path / "out.mp4"), "--chunk-frames", "20"], capture_output=True, text=True)
    assert lone.returncode == 1 and lone.stderr.strip() == "error: --chunk-frames needs --cluster"
    for threads in ("0", "-2"):
        for cluster_args in ([], ["--cluster", "local"]):
            bad = subprocess.run([sys.executable, "-m", "vsrife", "interpolate", str(sound_clip), "-o",
                                  str(tmp_path / "out.mp4"), "--threads", threads, *cluster_args],
                                 capture_output=True, text=True)
            assert bad.returncode == 1 and bad.stderr.strip() == f"error: --threads {threads}: it must be at least 1"
    # An interpreter in which `import ray` fails, as it does where the extra is not installed
    no_ray = subprocess.run([sys.executable, "-c", "import sys; sys.modules['ray'] = None; from vsrife import cli; "
                             f"sys.exit(cli.main(['interpolate', {str(sound_clip)!r}, '-o', "
                             f"{str(tmp_path / 'out.mp4')!r}, '--cluster', 'local']))"],
                            capture_output=True, text=True)
    assert no_ray.returncode == 1
    assert no_ray.stderr.strip() == "error: --cluster needs Ray: pip install 'vapoursynth-vfi[cluster]'"
    nobody = subprocess.run([sys.executable, "-m", "vsrife", "interpolate", str(sound_clip), "-o",
                             str(tmp_path / "out.mp4"), "--cluster", "127.0.0.1:1"], capture_output=True, text=True,
                            timeout=120)
    assert nobody.returncode == 1
    assert nobody.stderr.strip().startswith("error: --cluster 127.0.0.1:1: no Ray cluster answers there"), nobody.stderr
    assert leftovers(tmp_path) == []
