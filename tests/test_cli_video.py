"""`python -m vsrife interpolate | script | images` end to end: real ffmpeg, real BestSource, real weights."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import vapoursynth as vs

from conftest import SOURCE_FRAMES, VSPIPE, ffmpeg, ffmpeg_executable, vsrife

SOURCE_FPS = Fraction(24000, 1001)
COLOUR_PROPS = ("_Matrix", "_Primaries", "_Transfer", "_Range")


def stream_facts(path: Path) -> dict[str, object]:
    """Frames, rate, video and audio duration, colour properties, width: read back through BestSource."""
    core = vs.core
    video = core.bs.VideoSource(str(path))
    props = video.get_frame(0).props
    facts: dict[str, object] = {
        "frames": video.num_frames, "fps": Fraction(video.fps_num, video.fps_den), "width": video.width,
        "video_s": video.num_frames * video.fps_den / video.fps_num,
        "colour": {key: int(props[key]) for key in COLOUR_PROPS if key in props},
    }
    try:
        audio = core.bs.AudioSource(str(path))
        facts["audio_s"] = audio.num_samples / audio.sample_rate
    except vs.Error:
        facts["audio_s"] = None
    return facts


def stream_kinds(path: Path) -> list[str]:
    listing = subprocess.run([ffmpeg_executable(), "-hide_banner", "-i", str(path)], capture_output=True,
                             text=True, check=False).stderr
    return [line.split(": ", 1)[1] for line in listing.splitlines() if line.strip().startswith("Stream #")]


def frames_of(path: Path) -> list[np.ndarray]:
    clip = vs.core.bs.VideoSource(str(path))
    return [np.stack([np.asarray(frame[p]).copy() for p in range(frame.format.num_planes)
                      if frame[p].shape == frame[0].shape]) for frame in clip.frames()]


def test_source_is_what_the_tests_assume(tone_clip: Path) -> None:
    facts = stream_facts(tone_clip)
    assert facts["frames"] == SOURCE_FRAMES and facts["fps"] == SOURCE_FPS
    assert facts["colour"]["_Matrix"] == 1 and facts["colour"]["_Primaries"] == 1  # type: ignore[index]
    assert facts["audio_s"] is not None


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".webm"])
def test_multi_2_keeps_duration_audio_and_colour(tone_clip: Path, tmp_path: Path, suffix: str) -> None:
    output = tmp_path / f"out{suffix}"
    result = vsrife("interpolate", tone_clip, "-o", output, "--multi", "2")
    assert result.returncode == 0, result.stderr
    source, out = stream_facts(tone_clip), stream_facts(output)
    assert out["frames"] == 2 * SOURCE_FRAMES
    if suffix == ".mp4":
        assert out["fps"] == 2 * SOURCE_FPS
    else:  # Matroska stores times in milliseconds: the rate read back is rounded
        assert abs(float(out["fps"]) / float(2 * SOURCE_FPS) - 1) < 0.002  # type: ignore[arg-type]
    one_frame = float(1 / SOURCE_FPS)
    assert abs(out["video_s"] - source["video_s"]) <= one_frame  # type: ignore[operator]
    assert out["audio_s"] is not None and abs(out["audio_s"] - source["audio_s"]) <= one_frame  # type: ignore[operator]
    assert out["colour"] == source["colour"]
    assert not list(tmp_path.glob(".*partial*"))


@pytest.mark.parametrize("rate", [["--factor", "5/2"], ["--fps", "60000/1001"]])
def test_rational_rates_are_exact(tone_clip: Path, tmp_path: Path, rate: list[str]) -> None:
    output = tmp_path / "out.mp4"
    result = vsrife("interpolate", tone_clip, "-o", output, *rate, "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = stream_facts(output)
    assert out["fps"] == Fraction(60000, 1001)
    assert out["frames"] == SOURCE_FRAMES * 5 // 2
    assert abs(out["video_s"] - stream_facts(tone_clip)["video_s"]) <= float(1 / SOURCE_FPS)  # type: ignore[operator]


def test_start_end_cut_video_and_audio(tone_clip: Path, tmp_path: Path) -> None:
    output = tmp_path / "cut.mp4"
    result = vsrife("interpolate", tone_clip, "-o", output, "--start", "2", "--end", "7", "-q")
    assert result.returncode == 0, result.stderr
    out = stream_facts(output)
    assert out["frames"] == 2 * 6
    assert abs(out["audio_s"] - 6 / SOURCE_FPS) <= float(1 / SOURCE_FPS)  # type: ignore[operator]


def test_subtitles_follow_into_each_container(tone_clip: Path, tmp_path: Path) -> None:
    subtitles = tmp_path / "s.srt"
    subtitles.write_text("1\n00:00:00,000 --> 00:00:00,400\nHello\n")
    source = tmp_path / "subs.mkv"
    ffmpeg("-i", tone_clip, "-i", subtitles, "-map", "0", "-map", "1", "-c", "copy", source)
    expected = {".mp4": "mov_text", ".webm": "webvtt", ".mkv": "subrip"}
    for suffix, codec in expected.items():
        output = tmp_path / f"out{suffix}"
        result = vsrife("interpolate", source, "-o", output, "--end", "2", "-q")
        assert result.returncode == 0, result.stderr
        kinds = stream_kinds(output)
        assert next(k for k in kinds if k.startswith("Subtitle")).startswith(f"Subtitle: {codec}"), kinds
        assert any(k.startswith("Audio") for k in kinds)


def test_montage_doubles_the_width(tone_clip: Path, tmp_path: Path) -> None:
    output = tmp_path / "montage.mkv"
    result = vsrife("interpolate", tone_clip, "-o", output, "--montage", "--end", "3", "--codec", "ffv1", "-q")
    assert result.returncode == 0, result.stderr
    source_frames, montage = frames_of(tone_clip), frames_of(output)
    assert stream_facts(output)["width"] == 2 * 640 and len(montage) == 8
    # Left half: the source, each frame held twice; with ffv1 the left half is the decoded source exactly.
    for n, frame in enumerate(montage):
        assert np.array_equal(frame[:, :, :640], source_frames[n // 2])


def test_script_under_vspipe_matches_interpolate(tone_clip: Path, tmp_path: Path) -> None:
    options = ["--factor", "5/2", "--end", "4", "--sc"]
    script = vsrife("script", tone_clip, *options)
    assert script.returncode == 0, script.stderr
    assert "core.vfi.RIFE(source, factor_num=5, factor_den=2, sc=1)" in script.stdout
    vpy = tmp_path / "graph.vpy"
    vpy.write_text(script.stdout)
    y4m = tmp_path / "vspipe.y4m"
    subprocess.run([str(VSPIPE), "-c", "y4m", str(vpy), str(y4m)], check=True, capture_output=True, timeout=300)
    rendered = tmp_path / "cli.mkv"
    result = vsrife("interpolate", tone_clip, "-o", rendered, *options, "--codec", "ffv1", "--lossless", "-q")
    assert result.returncode == 0, result.stderr
    piped, encoded = frames_of(y4m), frames_of(rendered)
    assert len(piped) == len(encoded) == 5 * 5 // 2
    assert all(np.array_equal(a, b) for a, b in zip(piped, encoded, strict=True))


def test_scale_auto_is_the_plugin_scale_0(tone_clip: Path) -> None:
    script = vsrife("script", tone_clip, "--scale", "auto", "--end", "1")
    assert script.returncode == 0, script.stderr
    assert "core.vfi.RIFE(source, multi=2, scale=0.0)" in script.stdout
    assert vsrife("script", tone_clip, "--scale", "0", "--end", "1").stdout == script.stdout
    refused = vsrife("script", tone_clip, "--scale", "fast")
    assert refused.returncode == 2 and "'fast' is not a number or auto" in refused.stderr


def test_images_scale_auto_renders_the_automatic_scale(bikes_path: Path, tmp_path: Path) -> None:
    """Needs the plugin of this version (scale=0). 64x32 stills: auto picks scale 2 (vsrife.scale.auto_scale)."""
    stills = [tmp_path / "a.png", tmp_path / "b.png"]
    for still, frame in zip(stills, (100, 102), strict=True):
        ffmpeg("-i", bikes_path, "-vf", f"select=eq(n\\,{frame}),scale=64:32", "-frames:v", "1", still)
    middles = []
    for scale in ("auto", "2", "1"):
        result = vsrife("images", *stills, "--exp", "1", "-o", tmp_path / scale, "--scale", scale, "--device", "cpu",
                        "-q")
        assert result.returncode == 0, result.stderr
        middles.append(frames_of(tmp_path / scale / "frame_001.png")[0])
    assert np.array_equal(middles[0], middles[1]) and not np.array_equal(middles[0], middles[2])


def test_variable_rate_source_is_converted_with_a_message(bikes_path: Path, tmp_path: Path) -> None:
    source = tmp_path / "vfr.mkv"
    # 10 frames of 40 ms, then 10 of 20 ms
    ffmpeg("-i", bikes_path, "-filter_complex",
           "[0:v]trim=end_frame=10,setpts=PTS-STARTPTS,settb=1/1000[a];"
           "[0:v]trim=start_frame=10:end_frame=20,settb=1/1000,setpts=(PTS-STARTPTS)/2[b];[a][b]concat=n=2:v=1[v]",
           "-map", "[v]", "-fps_mode", "vfr", "-enc_time_base", "1/1000", "-c:v", "libx264", "-crf", "30", source)
    output = tmp_path / "cfr.mp4"
    result = vsrife("interpolate", source, "-o", output, "-q")
    assert result.returncode == 0, result.stderr
    assert "variable frame rate" in result.stderr and "converting it to a constant" in result.stderr
    out = stream_facts(output)
    source_seconds = 10 * 0.040 + 10 * 0.020
    assert abs(out["video_s"] - source_seconds) <= 0.045  # type: ignore[operator]


def test_images_exp_3_gif_mp4_and_16_bit(bikes_path: Path, tmp_path: Path) -> None:
    stills = [tmp_path / "a.png", tmp_path / "b.png"]
    for still, frame in zip(stills, (100, 102), strict=True):
        ffmpeg("-i", bikes_path, "-vf", f"select=eq(n\\,{frame})", "-frames:v", "1", "-pix_fmt", "rgb48be", still)
    out_dir = tmp_path / "frames"
    gif, mp4 = tmp_path / "a.gif", tmp_path / "a.mp4"
    result = vsrife("images", *stills, "--exp", "3", "-o", out_dir, "--gif", gif, "--mp4", mp4, "-q")
    assert result.returncode == 0, result.stderr
    written = sorted(out_dir.iterdir())
    assert [p.name for p in written] == [f"frame_{i:03d}.png" for i in range(9)]
    frames = [vs.core.bs.VideoSource(str(p)) for p in written]
    assert all(clip.format.id == vs.RGB48 for clip in frames)
    originals = frames_of(stills[0]), frames_of(stills[1])
    assert np.array_equal(frames_of(written[0])[0], originals[0][0])
    assert np.array_equal(frames_of(written[-1])[0], originals[1][0])
    assert not np.array_equal(frames_of(written[4])[0], originals[0][0])
    assert vs.core.bs.VideoSource(str(gif)).num_frames == 9
    assert vs.core.bs.VideoSource(str(mp4)).num_frames == 9


def test_rrin_through_the_cli(tone_clip: Path, tmp_path: Path, rrin_weights: Path) -> None:
    output = tmp_path / "rrin.mp4"
    result = vsrife("interpolate", tone_clip, "-o", output, "--method", "rrin", "--model-path", rrin_weights,
                    "--end", "1", "-q")
    assert result.returncode == 0, result.stderr
    assert stream_facts(output)["frames"] == 4


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_leaves_no_output_and_no_child(bikes_path: Path, tmp_path: Path, sig: signal.Signals) -> None:
    output = tmp_path / "stopped.mp4"
    partial = tmp_path / ".stopped.partial.mp4"
    process = subprocess.Popen([sys.executable, "-m", "vsrife", "interpolate", str(bikes_path), "-o", str(output),
                                "-q"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (partial.exists() and partial.stat().st_size > 0) and time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        time.sleep(0.1)
    time.sleep(1.0)  # half-way: frames are flowing into ffmpeg
    assert partial.exists()
    process.send_signal(sig)
    sent = time.monotonic()
    _, stderr = process.communicate(timeout=30)
    assert time.monotonic() - sent < 10
    assert process.returncode == 128 + sig
    assert "interrupted" in stderr
    assert not output.exists() and not partial.exists()
    assert _processes_mentioning(str(partial)) == []


@pytest.fixture(scope="module")
def text_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bad") / "notes.mp4"
    path.write_text("not a video\n")
    return path


@pytest.mark.parametrize("case", ["missing", "not_video", "codec", "fps_lower", "factor_one", "folder",
                                  "is_input", "exists", "crf_lossless", "scale_rrin", "no_extension",
                                  "unknown_container"])
def test_errors_are_one_line(case: str, tone_clip: Path, text_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    existing = tmp_path / "existing.mp4"
    existing.write_bytes(b"keep me")
    cases: dict[str, tuple[list[str | Path], str]] = {
        "missing": (["interpolate", tmp_path / "nope.mp4", "-o", out], "no such file"),
        "not_video": (["interpolate", text_file, "-o", out], "not a video BestSource can read"),
        "codec": (["interpolate", tone_clip, "-o", out, "--codec", "nosuchcodec"], "no such video encoder"),
        "fps_lower": (["interpolate", tone_clip, "-o", out, "--fps", "20"], "is not higher than the source's"),
        "factor_one": (["interpolate", tone_clip, "-o", out, "--factor", "1"], "does not raise the frame rate"),
        "folder": (["interpolate", tone_clip, "-o", tmp_path / "no" / "such" / "out.mp4"], "does not exist"),
        "is_input": (["interpolate", tone_clip, "-o", tone_clip], "that is the input"),
        "exists": (["interpolate", tone_clip, "-o", existing], "exists; pass --overwrite"),
        "crf_lossless": (["interpolate", tone_clip, "-o", out, "--crf", "10", "--lossless"], "not allowed with"),
        "scale_rrin": (["interpolate", tone_clip, "-o", out, "--method", "rrin", "--scale", "0.5"], "RIFE option"),
        "no_extension": (["interpolate", tone_clip, "-o", tmp_path / "out"], "needs an extension"),
        "unknown_container": (["interpolate", tone_clip, "-o", tmp_path / "out.xyz"], "knows no container for .xyz"),
    }
    args, message = cases[case]
    result = vsrife(*args)
    assert result.returncode in (1, 2), result.stderr  # 2: argparse's usage errors
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() and existing.read_bytes() == b"keep me"
    if result.returncode == 1:
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")


def test_every_command_has_help() -> None:
    for command in (["interpolate"], ["script"], ["images"], ["models", "list"], ["models", "download"]):
        result = vsrife(*command, "--help")
        assert result.returncode == 0 and "usage:" in result.stdout


def test_images_errors_are_one_line(bikes_path: Path, tmp_path: Path) -> None:
    stills = [tmp_path / "a.png", tmp_path / "b.png"]
    for still, frame in zip(stills, (0, 1), strict=True):
        ffmpeg("-i", bikes_path, "-vf", f"select=eq(n\\,{frame})", "-frames:v", "1", still)
    small = tmp_path / "small.png"
    ffmpeg("-i", stills[0], "-vf", "scale=64:32", small)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    cases: list[tuple[list[str | Path], str]] = [
        ([stills[0], small, "-o", tmp_path / "out"], "the images differ in size (640x272 and 64x32)"),
        ([*stills, "-o", blocker / "frames"], "a_file is not a folder"),
        ([*stills, "-o", tmp_path / "out", "--exp", "0"], "--exp must be at least 1"),
    ]
    for args, message in cases:
        result = vsrife("images", *args, "-q")
        assert result.returncode == 1 and message in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
