"""core.vfi.RIFE end to end: the real core, the installed plugin, real weights and real video.

Tests that take the `vfi` fixture run for core.vfi.RRIN as well (on random weights and smaller frames); RRIN's own
tests are in test_rrin_filter.py.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import vapoursynth as vs

from conftest import (
    VSPIPE,
    RequestLog,
    VfiFilter,
    clip_from_frames,
    decode_rgb,
    expect_error,
    frame_array,
    frame_drop_psnr,
    psnr,
    run_vspipe,
    shrink,
    small_rgbs,
)
from vsrife import registry

core = vs.core

# Frame-drop protocol of shared/DESIGN.md, CPU fp32: the published code's score minus 0.1 dB.
QUALITY_FLOOR_DB = {"4.0": 37.10, "3.1": 38.20, "3.5": 37.53, "3.8": 33.67}


def bikes_vpy(bikes_path: Path, frames: int, rife_args: str) -> str:
    """A .vpy script: the first frames of bikes.mp4 through a real source filter, then vfi.RIFE, as the output."""
    return (
        "import vapoursynth as vs\n"
        f"clip = vs.core.bs.VideoSource({str(bikes_path)!r})[:{frames}]\n"
        f"vs.core.vfi.RIFE(clip, {rife_args}).set_output()\n"
    )


def test_plugin_is_autoloaded_without_importing_vsrife() -> None:
    code = (
        "import sys, vapoursynth as vs\n"
        "assert 'vsrife' not in sys.modules\n"
        "print(vs.core.vfi.RIFE.name, vs.core.vfi.RRIN.name)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "RIFE RRIN"


def test_vspipe_y4m_header_and_frame_count(bikes_path: Path, tmp_path: Path) -> None:
    script = bikes_vpy(bikes_path, 5, "multi=2")
    result = run_vspipe(script, tmp_path, "-c", "y4m")
    assert result.returncode == 0, result.stderr.decode()
    header = result.stdout.split(b"\n", 1)[0].decode().split()
    assert header[0] == "YUV4MPEG2"
    assert {"W640", "H272", "F50:1", "C420"} <= set(header), header
    assert result.stdout.count(b"FRAME\n") == 10


@pytest.mark.parametrize(
    ("rate", "source_fps", "factor"),
    [
        ({"multi": 2}, Fraction(25), Fraction(2)),
        ({"multi": 3}, Fraction(25), Fraction(3)),
        ({"multi": 4}, Fraction(25), Fraction(4)),
        ({"factor_num": 5, "factor_den": 2}, Fraction(25), Fraction(5, 2)),
        ({"fps_num": 60000, "fps_den": 1001}, Fraction(24000, 1001), Fraction(5, 2)),
    ],
)
def test_mapping_properties_and_laziness(
    vfi: VfiFilter, bikes_rgb40: np.ndarray, request_log: RequestLog, rate: dict[str, int], source_fps: Fraction,
    factor: Fraction
) -> None:
    source = vfi.small_rgbs(bikes_rgb40).std.AssumeFPS(fpsnum=source_fps.numerator, fpsden=source_fps.denominator)
    source = source.std.SetFrameProps(Marker=7)
    logged, requested = request_log(source)
    out = vfi(logged, **rate)

    assert out.num_frames == source.num_frames * factor.numerator // factor.denominator
    assert Fraction(out.fps_num, out.fps_den) == source_fps * factor
    for n in range(out.num_frames):
        requested.clear()
        frame = out.get_frame(n)
        position = Fraction(n) / factor
        a, t = int(position), position - int(position)
        duration = Fraction(frame.props["_DurationNum"], frame.props["_DurationDen"])
        assert duration == 1 / (source_fps * factor), n
        if a >= source.num_frames - 1 or t == 0:
            a = min(a, source.num_frames - 1)
            assert sorted(set(requested)) == [a], (n, requested)
            assert np.array_equal(frame_array(frame), frame_array(source.get_frame(a))), n
        else:
            assert sorted(set(requested)) == [a, a + 1], (n, requested)
            neighbours = [frame_array(source.get_frame(i)) for i in (a, a + 1)]
            assert not any(np.array_equal(frame_array(frame), x) for x in neighbours), n
        assert frame.props["Marker"] == 7


@pytest.mark.parametrize("model", sorted(QUALITY_FLOOR_DB))
def test_frame_drop_quality_matches_published_code(bikes_rgb40: np.ndarray, model: str) -> None:
    score = frame_drop_psnr(bikes_rgb40, model=model)
    print(f"RIFE {model}: {score:.2f} dB")
    assert score >= QUALITY_FLOOR_DB[model]


def test_default_precision_keeps_the_quality_of_fp32(bikes_rgb40: np.ndarray) -> None:
    """precision="auto" is bf16 for RIFE 4.x on CPUs with native bf16 (fp32 elsewhere): within 0.1 dB of fp32."""
    fp32 = frame_drop_psnr(bikes_rgb40, model="4.0")
    default = frame_drop_psnr(bikes_rgb40, precision="auto", model="4.0")
    print(f"RIFE 4.0: fp32 {fp32:.3f} dB, default {default:.3f} dB")
    assert default >= fp32 - 0.1


def test_midpoint_only_model_reaches_other_positions(bikes_rgb40: np.ndarray) -> None:
    """3.x nets only make midpoints; multi=4 is reached by bisection and lands between its neighbours."""
    clip = small_rgbs(bikes_rgb40, 3)
    out = core.vfi.RIFE(clip, multi=4, model="3.8")
    quarter, half, three_quarters = (frame_array(out.get_frame(n)) for n in (1, 2, 3))
    first, second = frame_array(clip.get_frame(0)), frame_array(clip.get_frame(1))
    assert psnr(quarter, first) > psnr(three_quarters, first)
    assert psnr(three_quarters, second) > psnr(quarter, second)
    assert not np.array_equal(quarter, half) and not np.array_equal(half, three_quarters)


def spliced_clip(bikes_rgb40: np.ndarray, bunny_path: Path, downscale: int = 1) -> vs.VideoNode:
    """Four frames of bikes followed by four of another real video: a hard cut between frames 3 and 4.

    The cut measures 0.29 and the motion at most 0.014 at every downscale up to 4 (threshold 0.12).
    """
    bunny = decode_rgb(bunny_path, 4, width=640, height=272)
    return clip_from_frames(shrink(np.concatenate([bikes_rgb40[:4], bunny]), downscale))


@pytest.mark.parametrize("upstream_props", [False, True])
def test_scene_change_returns_copies_at_the_cut(
    vfi: VfiFilter, bikes_rgb40: np.ndarray, bunny_path: Path, upstream_props: bool
) -> None:
    clip = spliced_clip(bikes_rgb40, bunny_path, vfi.downscale)
    if upstream_props:
        # A detector upstream marked the cut, and (wrongly) a non-cut between 0 and 1: both must be honoured.
        clip = clip.std.SetFrameProps(_SceneChangeNext=0, _SceneChangePrev=0)
        marked = core.std.SetFrameProps(clip, _SceneChangeNext=1)
        clip = core.std.Splice([clip[0].std.SetFrameProps(_SceneChangeNext=1), clip[1:3], marked[3], clip[4:]])
    out = vfi(clip, multi=2, sc=1)
    at_cut = frame_array(out.get_frame(7))
    assert np.array_equal(at_cut, frame_array(clip.get_frame(3)))
    across_marked_pair = frame_array(out.get_frame(1))
    if upstream_props:
        assert np.array_equal(across_marked_pair, frame_array(clip.get_frame(0)))
    else:
        assert not np.array_equal(across_marked_pair, frame_array(clip.get_frame(0)))
    for n in (3, 5, 9, 11):  # ordinary motion on either side of the cut is still interpolated
        a = n // 2
        assert not np.array_equal(frame_array(out.get_frame(n)), frame_array(clip.get_frame(a))), n
    without_sc = vfi(clip, multi=2, sc=0)
    assert not np.array_equal(frame_array(without_sc.get_frame(7)), frame_array(clip.get_frame(3)))


@pytest.mark.parametrize(
    "fmt", [vs.YUV420P8, vs.YUV420P10, vs.YUV444PS, vs.GRAY16, vs.RGB24, vs.RGBH, vs.RGBS]
)
def test_formats_round_trip(bikes_yuv: vs.VideoNode, fmt: int) -> None:
    real = bikes_yuv[:7]
    if real.format.id != fmt:
        matrix = {} if vs.core.get_video_format(fmt).color_family != vs.RGB else {"matrix_in_s": "709"}
        real = core.resize.Bicubic(real, format=fmt, **matrix)
    kept = real[0::2]
    out = core.vfi.RIFE(kept, multi=2)
    assert out.format.id == fmt
    assert out.num_frames == 2 * kept.num_frames
    peak = 1.0 if out.format.sample_type == vs.FLOAT else float((1 << out.format.bits_per_sample) - 1)
    for k in range(kept.num_frames - 1):
        assert np.array_equal(frame_array(out.get_frame(2 * k)), frame_array(kept.get_frame(k)))
        score = psnr(frame_array(out.get_frame(2 * k + 1)), frame_array(real.get_frame(2 * k + 1)), peak)
        assert score > 28.0, (k, score)


def test_output_is_identical_across_vapoursynth_thread_counts(bikes_path: Path, tmp_path: Path) -> None:
    """vspipe -r sets VapourSynth's threads; the engine runs one pass at a time with torch's own (here: the default
    count in both processes), so the frames are the same bits."""
    script = bikes_vpy(bikes_path, 6, "multi=3, device='cpu', precision='fp32'")
    digests = []
    for threads in ("1", "8"):
        result = run_vspipe(script, tmp_path, "-c", "y4m", "-r", threads)
        assert result.returncode == 0, result.stderr.decode()
        digests.append(hashlib.sha256(result.stdout).hexdigest())
    assert digests[0] == digests[1]


def test_interpreter_exits_cleanly_after_the_filter_is_freed(bikes_path: Path) -> None:
    code = (
        "import gc, vapoursynth as vs\n"
        f"clip = vs.core.bs.VideoSource({str(bikes_path)!r})[:3]\n"
        "out = vs.core.vfi.RIFE(clip, multi=2)\n"
        "frames = [out.get_frame(n) for n in range(out.num_frames)]\n"
        "del frames, out\n"
        "gc.collect()\n"
        "print('done')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"
    assert "Traceback" not in result.stderr and "Fatal" not in result.stderr


RIFE = VfiFilter("RIFE")


def test_engine_errors_are_clear(bikes_rgb40: np.ndarray, tmp_path: Path) -> None:
    clip = small_rgbs(bikes_rgb40, 2)
    names = ", ".join(registry.model_names("rife"))  # 3.1, 3.5, 3.8, 4.0, 4.1, ..., 4.26, 4.26.heavy
    assert names.startswith("3.1, 3.5, 3.8, 4.0, 4.1, 4.2") and names.endswith("4.25.heavy, 4.26, 4.26.heavy")
    expect_error(RIFE, f"unknown model '9.9'; available models: {names}", clip, model="9.9")
    expect_error(RIFE, "model 'rrin' is an RRIN model; use vfi.RRIN", clip, model="rrin")
    expect_error(RIFE, "available devices: auto, cpu", clip, device="cuda:7")
    expect_error(RIFE, "available devices: auto, cpu", clip, device="tpu")
    expect_error(RIFE, "choose auto, fp32, fp16 or bf16", clip, precision="fp8")
    expect_error(RIFE, "precision 'fp16' is not supported on the CPU", clip, device="cpu", precision="fp16")
    expect_error(RIFE, "no ensemble mode", clip, model="3.1", ensemble=1)
    expect_error(RIFE, "tile must be at least 256 for model 4.0 at scale 0.25", clip, scale=0.25, tile=128)
    expect_error(RIFE, str(tmp_path / "missing.pkl"), clip, model_path=str(tmp_path / "missing.pkl"))
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"not a checkpoint")
    expect_error(RIFE, "garbage.pkl", clip, model_path=str(garbage))
    assert core.vfi.RIFE(clip).get_frame(1) is not None  # the process is alive and still works


def test_tiles_match_the_whole_frame_away_from_seams(bikes_rgb40: np.ndarray) -> None:
    """tile=128 cuts the 160x96 crop into two overlapping columns; the blend stays close to the one-pass frame."""
    clip = small_rgbs(bikes_rgb40, 2)
    whole = frame_array(core.vfi.RIFE(clip, device="cpu", precision="fp32").get_frame(1))
    tiled = frame_array(core.vfi.RIFE(clip, device="cpu", precision="fp32", tile=128, tile_overlap=32).get_frame(1))
    assert not np.array_equal(tiled, whole)
    assert psnr(tiled, whole) > 35.0


def test_offline_with_empty_cache_names_the_download_command(
    bikes_rgb40: np.ndarray, offline_empty_cache: Path
) -> None:
    expect_error(RIFE, "python -m vsrife models download 4.0", small_rgbs(bikes_rgb40, 2))
    assert not any(offline_empty_cache.rglob("*.pkl"))


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_matches_cpu(bikes_rgb40: np.ndarray, precision: str) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device in this machine")
    clip = clip_from_frames(np.ascontiguousarray(bikes_rgb40[:3]))
    cpu = frame_array(core.vfi.RIFE(clip, device="cpu", precision="fp32").get_frame(1))
    gpu = frame_array(core.vfi.RIFE(clip, device="cuda", precision=precision).get_frame(1))
    assert psnr(gpu, cpu) > (45.0 if precision == "fp32" else 38.0)


def test_vspipe_runs_the_readme_pipeline_shape(bikes_path: Path, tmp_path: Path) -> None:
    """vspipe output decodes in ffmpeg: the README's pipe, end to end, on a few frames."""
    from conftest import ffmpeg_executable

    script = tmp_path / "pipe.vpy"
    script.write_text(bikes_vpy(bikes_path, 4, "multi=2"))
    output = tmp_path / "out.mkv"
    with subprocess.Popen([str(VSPIPE), "-c", "y4m", str(script), "-"], stdout=subprocess.PIPE) as pipe:
        encode = subprocess.run([ffmpeg_executable(), "-hide_banner", "-loglevel", "error", "-i", "-",
                                 "-c:v", "ffv1", str(output)], stdin=pipe.stdout, timeout=600)
        assert pipe.stdout is not None
        pipe.stdout.close()
    assert pipe.returncode == 0 and encode.returncode == 0
    decoded = decode_rgb(output, 8)
    assert decoded.shape == (8, 272, 640, 3)
