"""What real videos carry survives `python -m vsrife interpolate`, or a message says what cannot.

Every input is made here with real ffmpeg (imageio-ffmpeg's, with libx265 and ffv1) and read back with real
BestSource and ffmpeg: HDR10 metadata, pixel aspect ratio, odd sizes, damaged files, interlacing, cut subtitles,
high rates, folders of numbered images.
"""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import vapoursynth as vs

from conftest import ffmpeg, ffmpeg_executable, header, subtitle_cues, vsrife
from test_cli_video import frames_of

MASTERING = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50)"
HDR_PARAMS = f"colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc:master-display={MASTERING}:max-cll=1000,400"
SMALL = "scale=160:68"


def props(path: Path, frame: int = 0) -> dict[str, object]:
    return dict(vs.core.bs.VideoSource(str(path)).get_frame(frame).props)


@pytest.fixture(scope="module")
def hdr10(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 frames of 10-bit HEVC, BT.2020/PQ, with mastering display and MaxCLL/MaxFALL."""
    path = tmp_path_factory.mktemp("hdr") / "hdr10.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x96:rate=24", "-frames:v", "6", "-pix_fmt", "yuv420p10le",
           "-c:v", "libx265", "-x265-params", f"{HDR_PARAMS}:log-level=error", path)
    return path


@pytest.mark.parametrize("suffix,codec", [(".mkv", None), (".mp4", None), (".mkv", "libx265")])
def test_hdr10_metadata_survives(hdr10: Path, tmp_path: Path, suffix: str, codec: str | None) -> None:
    output = tmp_path / f"out{suffix}"
    result = vsrife("interpolate", hdr10, "-o", output, "--end", "2", "-q", *(["--codec", codec] if codec else []))
    assert result.returncode == 0, result.stderr
    dump = header(output)
    assert "Video: hevc (Main 10)" in dump, dump  # the default for a 10-bit or HDR source keeps the bits
    assert "Mastering display metadata" in dump and "MaxCLL=1000, MaxFALL=400" in dump  # the container's
    source = props(hdr10)
    for frame in (0, 1):  # a source frame and an interpolated one, from the bitstream
        out = props(output, frame)
        for key in ("MasteringDisplayPrimariesX", "MasteringDisplayMaxLuminance", "MasteringDisplayMinLuminance",
                    "ContentLightLevelMax", "ContentLightLevelAverage", "_Primaries", "_Transfer", "_Matrix"):
            assert out[key] == source[key], key


def test_hdr10_plus_is_named_in_a_warning(tmp_path: Path) -> None:
    metadata = tmp_path / "hdr10plus.json"
    scene = {"LuminanceParameters": {"AverageRGB": 100, "LuminanceDistributions": {
        "DistributionIndex": [1, 5, 10, 25, 50, 75, 90, 95, 99],
        "DistributionValues": [10, 20, 30, 40, 50, 60, 70, 80, 90]}, "MaxScl": [1000, 1000, 1000]},
        "NumberOfWindows": 1, "TargetedSystemDisplayMaximumLuminance": 0, "SceneId": 0}
    metadata.write_text(json.dumps({
        "JSONInfo": {"HDR10plusProfile": "A", "Version": "1.0"},
        "SceneInfo": [scene | {"SceneFrameIndex": n, "SequenceFrameIndex": n} for n in range(4)],
        "SceneInfoSummary": {"SceneFirstFrameIndex": [0], "SceneFrameNumbers": [4]}}))
    source = tmp_path / "hdr10plus.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x96:rate=24", "-frames:v", "4", "-pix_fmt", "yuv420p10le",
           "-c:v", "libx265", "-x265-params", f"{HDR_PARAMS}:dhdr10-info={metadata}:log-level=error", source)
    assert "HDR10Plus" in props(source)
    result = vsrife("interpolate", source, "-o", tmp_path / "out.mkv", "--end", "1", "-q")
    assert result.returncode == 0, result.stderr
    assert "HDR10+ dynamic metadata (SMPTE ST 2094-40)" in result.stderr
    assert "Mastering display metadata" in header(tmp_path / "out.mkv")


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_anamorphic_source_keeps_its_pixel_aspect_ratio(bikes_path: Path, tmp_path: Path, suffix: str) -> None:
    source = tmp_path / "anamorphic.mkv"
    ffmpeg("-i", bikes_path, "-frames:v", "3", "-vf", f"{SMALL},setsar=32/27", "-c:v", "libx264", source)
    output = tmp_path / f"out{suffix}"
    result = vsrife("interpolate", source, "-o", output, "-q")
    assert result.returncode == 0, result.stderr
    out = props(output, 1)
    assert (out["_SARNum"], out["_SARDen"]) == (32, 27)


def test_odd_sizes_are_kept_or_the_crop_is_named(bikes_path: Path, tmp_path: Path) -> None:
    video = tmp_path / "odd.mkv"
    ffmpeg("-i", bikes_path, "-frames:v", "3", "-vf", "scale=161:69", "-pix_fmt", "yuv420p", "-c:v", "ffv1", video)
    result = vsrife("interpolate", video, "-o", tmp_path / "out.mkv", "--codec", "ffv1", "--lossless", "-q")
    assert result.returncode == 0, result.stderr
    assert ("odd.mkv is 161x69 with subsampled chroma, which VapourSynth holds only in even sizes: BestSource "
            "crops it to 160x68 (1 column(s) on the right, 1 row(s) at the bottom)") in result.stderr
    assert "subtitles" not in result.stderr  # the file has none
    # RGB images of an odd size reach the encoder whole: ffv1 stores them as they are
    folder = tmp_path / "odd_frames"
    folder.mkdir()
    for n in (0, 1):
        ffmpeg("-i", bikes_path, "-vf", f"select=eq(n\\,{n}),scale=161:69", "-frames:v", "1", folder / f"{n}.png")
    output = tmp_path / "odd_rgb.mkv"
    result = vsrife("interpolate", folder, "-o", output, "--codec", "ffv1", "--lossless", "-q")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    clip = vs.core.bs.VideoSource(str(output))
    assert (clip.width, clip.height, clip.num_frames) == (161, 69, 4)


def test_truncated_file_is_read_to_its_last_decodable_frame_and_named_damaged(bikes_path: Path,
                                                                            tmp_path: Path) -> None:
    whole = tmp_path / "whole.mp4"
    ffmpeg("-i", bikes_path, "-f", "lavfi", "-i", "sine=frequency=440", "-frames:v", "60", "-t", "2.4",
           "-vf", SMALL, "-c:v", "libx264", "-c:a", "aac", "-movflags", "+faststart", whole)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    decodable = subprocess.run([ffmpeg_executable(), "-hide_banner", "-nostats", "-i", str(cut), "-map", "0:v",
                                "-f", "null", "-progress", "pipe:1", "-"], capture_output=True, text=True)
    frames = int([line for line in decodable.stdout.splitlines() if line.startswith("frame=")][-1][6:])
    output = tmp_path / "out.mp4"
    result = vsrife("interpolate", cut, "-o", output, "-q")
    assert result.returncode == 0, result.stderr
    assert "cut.mp4 is damaged" in result.stderr and "its container declares 2.40 s" in result.stderr
    assert "variable frame rate" not in result.stderr
    clip = vs.core.bs.VideoSource(str(output))
    assert clip.num_frames == 2 * frames  # every frame ffmpeg decodes, not the ones threaded decoding keeps
    assert Fraction(clip.fps_num, clip.fps_den) == 50  # the source's 25 fps, doubled
    audio = vs.core.bs.AudioSource(str(output))
    assert audio.num_samples / audio.sample_rate <= clip.num_frames / (clip.fps_num / clip.fps_den) + 0.05


def test_interlaced_source_warns_and_deinterlaces_to_field_rate(bikes_path: Path, tmp_path: Path) -> None:
    source = tmp_path / "interlaced.mkv"
    ffmpeg("-i", bikes_path, "-frames:v", "6", "-vf", f"{SMALL},interlace", "-c:v", "libx264", "-flags",
           "+ildct+ilme", "-x264-params", "tff=1", source)
    assert props(source)["_FieldBased"] == 2
    plain = vsrife("interpolate", source, "-o", tmp_path / "plain.mp4", "--end", "1", "-q")
    assert plain.returncode == 0 and "interlaced (top field first)" in plain.stderr and "--deinterlace" in plain.stderr
    output = tmp_path / "fields.mp4"
    result = vsrife("interpolate", source, "-o", output, "--end", "1", "--deinterlace", "-q")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    clip = vs.core.bs.VideoSource(str(output))
    assert clip.num_frames == 2 * 2 * 2  # 2 frames, 2 fields each, doubled
    assert Fraction(clip.fps_num, clip.fps_den) == 2 * 2 * Fraction(25, 2)
    assert props(output)["_FieldBased"] == 0


def test_webvtt_cues_end_with_the_cut(bikes_path: Path, tmp_path: Path) -> None:
    cues = tmp_path / "s.vtt"
    cues.write_text("WEBVTT\n\n00:00:00.000 --> 00:00:00.300\nOne\n\n00:00:00.500 --> 00:00:02.000\nTwo\n\n"
                    "00:00:03.000 --> 00:00:04.000\nThree\n")
    source = tmp_path / "vtt.webm"
    ffmpeg("-i", bikes_path, "-i", cues, "-frames:v", "100", "-vf", SMALL, "-c:v", "libvpx-vp9", "-deadline",
           "realtime", "-cpu-used", "8", "-c:s", "webvtt", "-map", "0:v", "-map", "1", source)
    for suffix in (".webm", ".mkv", ".mp4"):
        output = tmp_path / f"cut{suffix}"
        result = vsrife("interpolate", source, "-o", output, "--end", "19", "-q")  # 20 frames: 0.8 s
        assert result.returncode == 0, result.stderr
        assert "Duration: 00:00:00.80" in header(output), header(output)
        text = subtitle_cues(output)
        assert "00:00.500 --> 00:00.800\nTwo" in text and "Three" not in text, text


def test_matroska_refuses_rates_its_milliseconds_cannot_hold(tone_clip: Path, tmp_path: Path) -> None:
    result = vsrife("interpolate", tone_clip, "-o", tmp_path / "fast.mkv", "--multi", "64")
    assert result.returncode == 1 and "store times in milliseconds" in result.stderr and ".mp4" in result.stderr


@pytest.mark.parametrize("multi", ["0", "1", "-2"])
def test_multi_below_2_is_refused(tone_clip: Path, tmp_path: Path, multi: str) -> None:
    result = vsrife("interpolate", tone_clip, "-o", tmp_path / "out.mp4", "--multi", multi)
    assert result.returncode == 1 and f"--multi {multi} does not raise the frame rate" in result.stderr


def test_messages_name_cli_flags(tone_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    cases = [
        (["--model", "rrin"], "--model rrin is an RRIN model: add --method rrin"),
        (["--method", "rrin"], "give your own weight file with --model-path FILE"),
        (["--method", "rrin", "--model", "rrin-official"], "pass its path with --model-path"),
    ]
    for args, message in cases:
        result = vsrife("interpolate", tone_clip, "-o", out, *args)
        assert result.returncode == 1 and message in result.stderr, result.stderr
        assert "model_path=" not in result.stderr and "vfi." not in result.stderr
    audio = tmp_path / "tone.m4a"
    ffmpeg("-i", tone_clip, "-map", "0:a", "-c", "copy", audio)
    result = vsrife("interpolate", audio, "-o", out)
    assert result.returncode == 1 and "has no video stream (only audio)" in result.stderr


def test_global_metadata_is_kept(tone_clip: Path, tmp_path: Path) -> None:
    source = tmp_path / "titled.mkv"
    ffmpeg("-i", tone_clip, "-c", "copy", "-metadata", "title=Bikes at dusk", source)
    output = tmp_path / "out.mp4"
    assert vsrife("interpolate", source, "-o", output, "--end", "1", "-q").returncode == 0
    assert "title           : Bikes at dusk" in header(output)


# ------------------------------------------------------------------------------------------------ folders


@pytest.fixture(scope="module")
def image_folder(bikes_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Frames 100-103 of bikes.mp4 as img8.png, img9.png, img10.png, img11.png (natural order is not name order)."""
    folder = tmp_path_factory.mktemp("frames") / "in"
    folder.mkdir()
    for frame, number in zip(range(100, 104), (8, 9, 10, 11), strict=True):
        ffmpeg("-i", bikes_path, "-vf", f"select=eq(n\\,{frame}),{SMALL}", "-frames:v", "1",
               folder / f"img{number}.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_folder_to_folder_keeps_the_frames_in_natural_order(image_folder: Path, tmp_path: Path) -> None:
    output = tmp_path / "out"
    result = vsrife("interpolate", image_folder, "-o", f"{output}/", "-q")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    written = sorted(output.iterdir())
    assert [p.name for p in written] == [f"frame_{n:03d}.png" for n in range(8)]
    sources = [image_folder / f"img{n}.png" for n in (8, 9, 10, 11)]
    for n, source in enumerate(sources):  # even frames are the images themselves, in natural order
        assert np.array_equal(frames_of(written[2 * n])[0], frames_of(source)[0])
    again = vsrife("interpolate", image_folder, "-o", output, "-q")
    assert again.returncode == 1 and "holds 8 images" in again.stderr and "--overwrite" in again.stderr
    replaced = vsrife("interpolate", image_folder, "-o", output, "--multi", "3", "--end", "1", "--overwrite", "-q")
    assert replaced.returncode == 0, replaced.stderr
    assert sorted(p.name for p in output.iterdir()) == [f"frame_{n:03d}.png" for n in range(6)]


def test_dedup_and_a_mask_image_from_the_command_line(bikes_path: Path, tmp_path: Path) -> None:
    folder = tmp_path / "twos"
    folder.mkdir()
    for index in range(6):  # frames 100, 102, 104 of bikes.mp4, each shown twice: animation on twos
        ffmpeg("-i", bikes_path, "-vf", f"select=eq(n\\,{100 + index - index % 2}),{SMALL}", "-frames:v", "1",
               folder / f"img{index}.png")
    mask = tmp_path / "mask.png"  # black (keep) on the bottom 18 rows: a subtitle band
    ffmpeg("-f", "lavfi", "-i", "color=white:s=160x68,drawbox=x=0:y=50:w=160:h=18:color=black:t=fill",
           "-frames:v", "1", mask)
    output = tmp_path / "out"
    result = vsrife("interpolate", folder, "-o", f"{output}/", "--dedup", "--mask", mask, "-q")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    written = sorted(output.iterdir())
    assert len(written) == 12
    # output 2 sits on held frame 1: the in-between of frames 0 and 2 at t = 0.5, whose nearest frame is 2
    held, nearest, copy = frames_of(written[2])[0], frames_of(folder / "img2.png")[0], frames_of(folder / "img1.png")[0]
    assert np.array_equal(held[:, 50:], nearest[:, 50:])
    assert np.abs(held[:, :50].astype(int) - copy[:, :50]).mean() > 1.0
    missing = vsrife("interpolate", folder, "-o", f"{tmp_path / 'none'}/", "--mask", tmp_path / "no.png", "-q")
    assert missing.returncode == 2 and "no.png: no such file" in missing.stderr


def test_folder_rate_and_a_differing_image(image_folder: Path, tone_clip: Path, tmp_path: Path) -> None:
    output = tmp_path / "out.mp4"
    result = vsrife("interpolate", image_folder, "-o", output, "--rate", "24000/1001", "-q")
    assert result.returncode == 0, result.stderr
    clip = vs.core.bs.VideoSource(str(output))
    assert clip.num_frames == 8 and Fraction(clip.fps_num, clip.fps_den) == Fraction(48000, 1001)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for path in image_folder.glob("*.png"):
        (mixed / path.name).write_bytes(path.read_bytes())
    ffmpeg("-i", image_folder / "img10.png", "-vf", "scale=162:68", mixed / "img10.png")
    result = vsrife("interpolate", mixed, "-o", tmp_path / "mixed.mp4")
    assert result.returncode == 1
    assert "img10.png is 162x68 RGB24, unlike img8.png and the files before it (160x68 RGB24)" in result.stderr
    refused = vsrife("interpolate", tone_clip, "-o", tmp_path / "x.mp4", "--rate", "30")
    assert refused.returncode == 1 and "--rate is the frame rate of a folder of images" in refused.stderr


def test_video_to_folder_keeps_the_bit_depth(hdr10: Path, tone_clip: Path, tmp_path: Path) -> None:
    for source, depth, frames in ((hdr10, vs.RGB48, 4), (tone_clip, vs.RGB24, 4)):
        output = tmp_path / source.stem
        result = vsrife("interpolate", source, "-o", f"{output}/", "--end", "1", "-q")
        assert result.returncode == 0, result.stderr
        written = sorted(output.iterdir())
        assert len(written) == frames
        assert vs.core.bs.VideoSource(str(written[1])).format.id == depth
    assert "left out" in vsrife("interpolate", tone_clip, "-o", f"{tmp_path}/with_audio/", "--end", "1").stderr


def test_images_refuse_alpha_and_old_frames(image_folder: Path, tmp_path: Path) -> None:
    stills = [image_folder / "img8.png", image_folder / "img9.png"]
    rgba = tmp_path / "rgba.png"
    ffmpeg("-i", stills[1], "-vf", "format=rgba", rgba)
    result = vsrife("images", stills[0], rgba, "-o", tmp_path / "a")
    assert result.returncode == 1 and "rgba.png has an alpha channel" in result.stderr
    out = tmp_path / "frames"
    assert vsrife("images", *stills, "--exp", "2", "-o", out, "-q").returncode == 0
    again = vsrife("images", *stills, "--exp", "1", "-o", out, "-q")
    assert again.returncode == 1 and "holds 5 images" in again.stderr
    assert vsrife("images", *stills, "--exp", "1", "-o", out, "--overwrite", "-q").returncode == 0
    assert sorted(p.name for p in out.iterdir()) == ["frame_000.png", "frame_001.png", "frame_002.png"]


def test_what_the_encoder_cannot_store_is_said(bikes_path: Path, tmp_path: Path) -> None:
    deep = tmp_path / "deep"
    odd = tmp_path / "odd"
    for folder in (deep, odd):
        folder.mkdir()
    for n in (0, 1):
        ffmpeg("-i", bikes_path, "-vf", f"select=eq(n\\,{n}),{SMALL}", "-frames:v", "1", "-pix_fmt", "rgb48be",
               deep / f"{n}.png")
        ffmpeg("-i", bikes_path, "-vf", f"select=eq(n\\,{n}),scale=161:69", "-frames:v", "1", odd / f"{n}.png")
    # 16-bit frames: the default for deep sources (libx265) keeps 12 bits, and says so
    result = vsrife("interpolate", deep, "-o", tmp_path / "deep.mkv", "-q")
    assert result.returncode == 0 and "libx265 stores the rgb48be frames as yuv444p12le" in result.stderr
    lossless = vsrife("interpolate", deep, "-o", tmp_path / "deep2.mkv", "--codec", "libx264", "--lossless", "-q")
    assert lossless.returncode == 1 and "which is not lossless; choose --codec ffv1" in lossless.stderr
    # Xvid takes no odd size: padded, and said
    output = tmp_path / "odd.avi"
    result = vsrife("interpolate", odd, "-o", output, "--codec", "libxvid", "-q")
    assert result.returncode == 0, result.stderr
    assert "frames: they are padded to 162x70 (1 column(s) on the right, 1 row(s) at the bottom" in result.stderr
    clip = vs.core.bs.VideoSource(str(output))
    assert (clip.width, clip.height) == (162, 70)


def test_hdr10_without_ffmpegs_option_goes_to_x265_or_is_refused(hdr10: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """An ffmpeg without -mastering_display (before 8.0): libx265 gets the metadata as x265 parameters."""
    from vsrife import encoding, media
    from vsrife.errors import MediaError
    from vsrife.tags import VideoTags

    monkeypatch.setattr(encoding, "ffmpeg_input_options", lambda: frozenset())
    hdr = media.probe(hdr10).hdr
    assert hdr is not None and hdr.mastering_display == MASTERING and hdr.content_light == "1000,400"
    tags, options = encoding.hdr_tags(hdr, encoding.video_options(".mkv", "libx265", None, False))
    assert tags is None and f"master-display={MASTERING}" in options["x265-params"]
    output = tmp_path / "x265.mkv"
    clip = vs.core.bs.VideoSource(str(hdr10))
    colour = VideoTags(media.colour_options(props(hdr10)))
    encoding.encode(clip, output, output_options=options, tags=colour)
    assert props(output)["ContentLightLevelMax"] == 1000
    assert props(output)["MasteringDisplayMaxLuminance"] == 1000
    with pytest.raises(MediaError, match="cannot give libx264 the source's HDR10 metadata"):
        encoding.hdr_tags(hdr, encoding.video_options(".mkv", "libx264", None, False))
