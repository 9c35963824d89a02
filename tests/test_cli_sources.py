"""`python -m vsrife interpolate` on files as cameras, phones, editors and stream copies make them: what plays when
(cuts, offsets, edit lists, gaps, damage), how the picture is shown (rotation, flips, anamorphic pixels, EXIF),
what else a file carries (metadata, chapters, cover art, timecode, ProRes profile, RGB), and the messages that say
what the user can do. Every input is made with real ffmpeg (or Pillow, for EXIF) and read back with real ffmpeg
and BestSource.
"""

from __future__ import annotations

import re
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import vapoursynth as vs

from conftest import ffmpeg, ffmpeg_executable, header, packet_spans, subtitle_cues, vsrife
from test_cli_video import frames_of

SMALL = "scale=160:68"
AUDIO_PACKET_S = 0.03  # a copied audio stream is cut at its packets: AAC's 21 ms, Opus's 20 ms


def clip(path: Path) -> vs.VideoNode:
    return vs.core.bs.VideoSource(str(path))


def rate(path: Path) -> Fraction:
    video = clip(path)
    return Fraction(video.fps_num, video.fps_den)


def sar(path: Path) -> tuple[int, int]:
    props = clip(path).get_frame(0).props
    return int(props["_SARNum"]), int(props["_SARDen"])


@pytest.fixture(scope="module")
def small(bikes_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 s of bikes.mp4 at 160x68, 25 fps, H.264 with B-frames and a keyframe each second, AAC audio: a camera's
    file in miniature."""
    path = tmp_path_factory.mktemp("small") / "small.mp4"
    ffmpeg("-i", bikes_path, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-frames:v", 50, "-t", 2,
           "-vf", SMALL, "-c:v", "libx264", "-g", 25, "-c:a", "aac", path)
    return path


# ------------------------------------------------------------------------------------------------ timing


@pytest.fixture(scope="module")
def edited(small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What an editor exports: Opus audio, WebVTT subtitles (a cue before 0.4 s, one across it, one after), three
    chapters, a title and an artist, in Matroska."""
    folder = tmp_path_factory.mktemp("edited")
    cues = folder / "cues.vtt"
    cues.write_text("WEBVTT\n\n00:00:00.100 --> 00:00:00.300\nBefore\n\n00:00:00.350 --> 00:00:00.700\nAcross\n\n"
                    "00:00:01.000 --> 00:00:01.200\nAfter\n")
    chapters = folder / "chapters.txt"
    chapters.write_text(";FFMETADATA1\ntitle=Bikes\nartist=Someone\n" + "".join(
        f"[CHAPTER]\nTIMEBASE=1/1000\nSTART={start}\nEND={end}\ntitle={name}\n"
        for start, end, name in ((0, 500, "One"), (500, 1000, "Two"), (1000, 2000, "Three"))))
    path = folder / "edited.mkv"
    ffmpeg("-i", small, "-i", cues, "-i", chapters, "-map", "0", "-map", "1", "-map_metadata", 2, "-map_chapters", 2,
           "-c:v", "copy", "-c:a", "libopus", "-c:s", "webvtt", path)
    return path


@pytest.mark.parametrize("suffix", [".mkv", ".webm", ".mp4"])
def test_a_cut_starts_every_stream_at_zero_and_ends_with_the_video(edited: Path, tmp_path: Path,
                                                                     suffix: str) -> None:
    output = tmp_path / f"cut{suffix}"
    result = vsrife("interpolate", edited, "-o", output, "--start", 10, "--end", 29, "-q")  # 0.4 s to 1.2 s
    assert result.returncode == 0, result.stderr
    dump = header(output)
    assert "Duration: 00:00:00.80," in dump, dump
    spans = packet_spans(output)
    assert (spans[0].start_s, spans[0].end_s) == (0.0, 0.8)  # the video
    for span in spans.values():  # audio within one packet of it, subtitles within it
        assert 0 <= span.start_s <= AUDIO_PACKET_S and 0.8 - AUDIO_PACKET_S <= span.end_s <= 0.8, spans
    assert re.findall(r"Chapter #0:\d: start ([\d.]+), end ([\d.]+)", dump) == [
        ("0.000000", "0.100000"), ("0.100000", "0.600000"), ("0.600000", "0.800000")]
    assert re.search(r"title\s*: Bikes", dump) and re.search(r"(?i)artist\s*: Someone", dump)
    cues = subtitle_cues(output)
    assert "Before" not in cues and "00:00.000 --> 00:00.300\nAcross" in cues, cues
    assert "00:00.600 --> 00:00.800\nAfter" in cues, cues


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_video_that_starts_after_its_audio_keeps_its_place(small: Path, tmp_path: Path, suffix: str) -> None:
    source = tmp_path / f"late{suffix}"
    ffmpeg("-itsoffset", "0.5", "-i", small, "-i", small, "-map", "0:v", "-map", "1:a", "-c", "copy", source)
    assert packet_spans(source)[0].start_s == 0.5
    whole = tmp_path / f"whole{suffix}"
    assert vsrife("interpolate", source, "-o", whole, "-q").returncode == 0
    spans = packet_spans(whole)
    assert spans[0].start_s == 0.5 and abs(spans[1].start_s) <= AUDIO_PACKET_S, spans
    cut = tmp_path / f"cut{suffix}"
    assert vsrife("interpolate", source, "-o", cut, "--start", 5, "-q").returncode == 0
    spans = packet_spans(cut)  # frame 5 is shown at 0.7 s: everything from there
    assert spans[0].start_s == 0 and abs(spans[0].end_s - 1.8) < 0.001, spans
    assert 0 <= spans[1].start_s <= AUDIO_PACKET_S and spans[1].end_s <= 1.8, spans


def test_a_stream_copy_trim_keeps_the_rate(bikes_path: Path, tmp_path: Path) -> None:
    """`-ss/-t -c copy` leaves an edit list and, at its end, B-frames whose references were cut away."""
    long = tmp_path / "long.mp4"
    ffmpeg("-i", bikes_path, "-frames:v", 125, "-vf", SMALL, "-c:v", "libx264", "-g", 50, long)
    trimmed = tmp_path / "trimmed.mp4"
    ffmpeg("-ss", "1.3", "-i", long, "-t", 2, "-c", "copy", trimmed)
    output = tmp_path / "out.mkv"
    result = vsrife("interpolate", trimmed, "-o", output, "--codec", "ffv1", "-q")
    assert result.returncode == 0, result.stderr
    assert "variable frame rate" not in result.stderr and "damaged" not in result.stderr
    assert "timestamps skip" in result.stderr and "the rate stays 25 fps" in result.stderr
    assert rate(output) == 50


def test_damage_in_the_middle_is_named_and_the_rate_stays(small: Path, tmp_path: Path) -> None:
    data = bytearray(small.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 4000] = bytes(4000)
    zeroed = tmp_path / "zeroed.mp4"
    zeroed.write_bytes(bytes(data))
    output = tmp_path / "out.mp4"
    result = vsrife("interpolate", zeroed, "-o", output, "--multi", 2, "-q")
    assert result.returncode == 0, result.stderr
    assert "zeroed.mp4 is damaged" in result.stderr and "of its 25 fps do not decode" in result.stderr
    assert "variable frame rate" not in result.stderr
    assert rate(output) == 50 and clip(output).num_frames == 2 * 50  # the lost frames repeated in place


def test_a_missing_frame_keeps_an_exact_30_fps(bikes_path: Path, tmp_path: Path) -> None:
    source = tmp_path / "gap30.mp4"
    ffmpeg("-i", bikes_path, "-vf", f"{SMALL},fps=30,select=not(eq(n\\,10))", "-fps_mode", "passthrough",
           "-frames:v", 20, "-c:v", "libx264", source)
    output = tmp_path / "out.mp4"
    result = vsrife("interpolate", source, "-o", output, "-q")
    assert result.returncode == 0, result.stderr
    assert "skip 1 frame of its constant 30 fps (1 at 0.33 s" in result.stderr, result.stderr
    assert rate(output) == 60 and clip(output).num_frames == 2 * 21


# ------------------------------------------------------------------------------------------------ geometry


@pytest.fixture(scope="module")
def anamorphic(small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 frames with 4:3 pixels in the bitstream: a DV or HDV camera's kind."""
    path = tmp_path_factory.mktemp("anamorphic") / "anamorphic.mp4"
    ffmpeg("-i", small, "-frames:v", 4, "-vf", "setsar=4/3", "-c:v", "libx264", "-an", path)
    return path


@pytest.mark.parametrize("display", [["-display_rotation", "90"], ["-display_rotation", "-90"], ["-display_hflip"],
                                     ["-display_vflip"], ["-display_rotation", "90", "-display_hflip"]])
def test_display_matrix_turns_the_picture_and_its_pixel_shape(anamorphic: Path, tmp_path: Path,
                                                               display: list[str]) -> None:
    """A phone's rotation (or a flip) in the container: the output shows what ffmpeg's own autorotation shows."""
    source = tmp_path / "turned.mp4"
    ffmpeg(*display, "-i", anamorphic, "-c", "copy", source)
    output = tmp_path / "out.mkv"
    result = vsrife("interpolate", source, "-o", output, "--end", 1, "--codec", "ffv1", "-q")
    assert result.returncode == 0, result.stderr
    shown = tmp_path / "shown.mkv"  # ffmpeg applies the display matrix when it decodes
    ffmpeg("-i", source, "-frames:v", 1, "-c:v", "ffv1", shown)
    assert np.array_equal(frames_of(output)[0], frames_of(shown)[0])
    turned = display[0] == "-display_rotation"
    assert sar(output) == ((3, 4) if turned else (4, 3))  # ffmpeg's autorotation gives 3:4 too
    assert sar(shown) == sar(output)


def test_display_aspect_in_the_container_alone_survives(small: Path, tmp_path: Path) -> None:
    source = tmp_path / "aspect.mkv"
    ffmpeg("-i", small, "-c", "copy", "-aspect", "16:9", source)
    assert "SAR 34:45 DAR 16:9" in header(source) and sar(source) == (1, 1)  # the bitstream says square
    output = tmp_path / "out.mp4"
    assert vsrife("interpolate", source, "-o", output, "--end", 1, "-q").returncode == 0
    assert sar(output) == (34, 45) and "DAR 16:9" in header(output)


def test_odd_rotated_source_names_its_crop_in_its_own_sizes(bikes_path: Path, tmp_path: Path) -> None:
    coded = tmp_path / "odd.mkv"
    ffmpeg("-i", bikes_path, "-frames:v", 3, "-vf", "scale=321:241", "-pix_fmt", "yuv420p", "-c:v", "ffv1", coded)
    source = tmp_path / "turned.mkv"
    ffmpeg("-display_rotation", 90, "-i", coded, "-c", "copy", source)
    result = vsrife("script", source)
    assert result.returncode == 0, result.stderr
    assert ("turned.mkv is 321x241 with subsampled chroma, which VapourSynth holds only in even sizes: BestSource "
            "crops it to 320x240 (1 column(s) on the right, 1 row(s) at the bottom), then turns it to 240x320"
            ) in result.stderr


@pytest.fixture(scope="module")
def photos(bikes_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """JPEGs with each EXIF orientation, written as cameras do (an APP1 Exif segment), by Pillow."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("photos")
    plain = folder / "plain.jpg"
    ffmpeg("-i", bikes_path, "-vf", f"select=eq(n\\,100),{SMALL}", "-frames:v", 1, "-q:v", 2, plain)
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        with Image.open(plain) as image:
            image.save(folder / f"o{orientation}.jpg", exif=exif, quality=95)
    return folder


def test_exif_orientation_is_shown_as_every_viewer_shows_it(photos: Path, tmp_path: Path) -> None:
    from vsrife.frames import open_image

    for orientation in range(1, 9):
        photo = photos / f"o{orientation}.jpg"
        ours = np.asarray(open_image(photo).get_frame(0)[0])
        # ffmpeg turns the picture as its EXIF says when it decodes; the luma plane's samples as they are
        shown = subprocess.run([ffmpeg_executable(), "-loglevel", "error", "-i", str(photo), "-vf", "extractplanes=y",
                                "-f", "rawvideo", "-"], capture_output=True, check=True).stdout
        turned = orientation >= 5
        assert ours.shape == ((160, 68) if turned else (68, 160)), orientation
        assert np.array_equal(ours, np.frombuffer(shown, np.uint8).reshape(ours.shape)), orientation
    output = tmp_path / "frames"
    result = vsrife("images", photos / "o6.jpg", photos / "o8.jpg", "-o", output, "-q")
    assert result.returncode == 0, result.stderr
    assert (clip(output / "frame_000.png").width, clip(output / "frame_000.png").height) == (68, 160)


def test_a_gap_in_a_folders_numbering_is_said(photos: Path, tmp_path: Path) -> None:
    folder = tmp_path / "shots"
    folder.mkdir()
    for number in (1, 2, 4):
        (folder / f"shot{number:03d}.jpg").write_bytes((photos / "o6.jpg").read_bytes())
    result = vsrife("script", folder)
    assert result.returncode == 0, result.stderr
    assert "the numbering of shots skips shot003.jpg (between shot002.jpg and shot004.jpg)" in result.stderr
    assert "image_sequence(" in result.stdout


# ------------------------------------------------------------------------------------------------ what else


def test_metadata_and_chapters_are_kept_without_audio(edited: Path, tmp_path: Path) -> None:
    silent = tmp_path / "silent.mkv"
    ffmpeg("-i", edited, "-map", "0:v", "-c", "copy", "-metadata:s:v:0", "language=fra", "-metadata:s:v:0",
           "title=Camera 2", silent)
    for suffix in (".mp4", ".mkv"):
        output = tmp_path / f"out{suffix}"
        assert vsrife("interpolate", silent, "-o", output, "--end", 9, "-q").returncode == 0
        dump = header(output)
        assert re.search(r"title\s*: Bikes", dump) and re.search(r"(?i)artist\s*: Someone", dump), dump
        assert "Chapter #0:0: start 0.000000, end 0.400000" in dump
        video = dump[dump.index("Stream #0:0"):]
        assert "(fra): Video" in video and re.search(r"(title|name)\s*: Camera 2", video), dump


def test_cover_art_goes_where_the_container_takes_it(small: Path, bikes_path: Path, tmp_path: Path) -> None:
    cover = tmp_path / "cover.jpg"
    ffmpeg("-i", bikes_path, "-frames:v", 1, "-vf", "scale=64:64", cover)
    source = tmp_path / "song.mp4"
    ffmpeg("-i", small, "-i", cover, "-map", 0, "-map", 1, "-c", "copy", "-disposition:v:1", "attached_pic", source)
    for suffix in (".mp4", ".mkv"):
        output = tmp_path / f"out{suffix}"
        result = vsrife("interpolate", source, "-o", output, "--end", 3, "-q")
        assert result.returncode == 0 and result.stderr == "", result.stderr
        assert re.search(r"Video: mjpeg.*\(attached pic\)", header(output)), header(output)
        assert header(output).count("Video:") == 2  # the frames and the cover, no third stream
    result = vsrife("interpolate", source, "-o", tmp_path / "out.webm", "--end", 3, "-q")
    assert result.returncode == 0 and "the cover art of song.mp4 (mjpeg) fits no .webm file" in result.stderr


@pytest.mark.parametrize("suffix", [".mov", ".mkv"])
def test_timecode_follows_the_cut_and_the_rate(small: Path, tmp_path: Path, suffix: str) -> None:
    source = tmp_path / "camera.mov"
    ffmpeg("-i", small, "-c", "copy", "-timecode", "01:00:00:00", source)
    output = tmp_path / f"out{suffix}"
    assert vsrife("interpolate", source, "-o", output, "--start", 5, "--end", 9, "-q").returncode == 0
    # frame 5 at 25 fps is 01:00:00:05; at 50 fps the same instant is labelled 01:00:00:10
    assert re.search(r"(?i)timecode\s*: 01:00:00:10", header(output)), header(output)
    assert "Data: none (tmcd" in header(output) if suffix == ".mov" else True


def test_prores_keeps_its_profile(small: Path, tmp_path: Path) -> None:
    source = tmp_path / "standard.mov"
    ffmpeg("-i", small, "-frames:v", 3, "-c:v", "prores_ks", "-profile:v", "standard", "-an", source)
    output = tmp_path / "out.mov"
    result = vsrife("interpolate", source, "-o", output, "--codec", "prores_ks", "-q")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert "prores (Standard)" in header(output)


def test_lossless_rgb_is_bit_exact_or_refused(small: Path, tmp_path: Path) -> None:
    source = tmp_path / "rgb.mkv"
    ffmpeg("-i", small, "-frames:v", 3, "-pix_fmt", "rgb24", "-c:v", "ffv1", "-an", source)
    output = tmp_path / "out.mkv"
    result = vsrife("interpolate", source, "-o", output, "--codec", "ffv1", "--lossless", "-q")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert clip(output).format.id == vs.RGB24
    for n, frame in enumerate(frames_of(source)):  # every source frame, sample for sample
        assert np.array_equal(frames_of(output)[2 * n], frame)
    refused = vsrife("interpolate", source, "-o", tmp_path / "x264.mkv", "--lossless")
    assert refused.returncode == 1
    assert "--lossless: libx264 stores the bgr0 frames as yuv444p, which is not lossless" in refused.stderr


# ------------------------------------------------------------------------------------------------ messages


@pytest.fixture(scope="module")
def broken(small: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Files a user may have: one frame, no frames at all, a recording cut off before its index was written."""
    folder = tmp_path_factory.mktemp("broken")
    files = {name: folder / f"{name}.mp4" for name in ("one", "empty", "empty_track", "moovless")}
    ffmpeg("-i", small, "-frames:v", 1, "-an", "-c:v", "libx264", files["one"])
    ffmpeg("-i", small, "-frames:v", 0, "-an", "-c:v", "libx264", files["empty"])
    ffmpeg("-i", small, "-frames:v", 0, "-an", "-c:v", "libx264", "-movflags", "frag_keyframe+empty_moov",
           files["empty_track"])  # a fragmented recording stopped before its first fragment
    data = small.read_bytes()
    files["moovless"].write_bytes(data[: data.rindex(b"moov") - 4])  # the index is written last
    return files


@pytest.mark.parametrize("case", ["xyz", "webm", "mp3", "gif", "crf", "crf_unknown", "one_frame", "end_alone",
                                  "empty", "empty_track", "moovless", "nested_folder"])
def test_messages_name_the_option_or_the_files_problem(case: str, small: Path, broken: dict[str, Path],
                                                         tmp_path: Path) -> None:
    cases: dict[str, tuple[list[str | Path | int], str]] = {
        "xyz": ([small, "-o", tmp_path / "out.xyz"], "ffmpeg knows no container for .xyz files"),
        "webm": ([small, "-o", tmp_path / "out.webm", "--codec", "libx264"],
                 "--codec libx264: a .webm file cannot hold its video; use --codec libvpx-vp9"),
        "mp3": ([small, "-o", tmp_path / "out.mp3"], "a .mp3 file cannot hold this video"),
        "gif": ([small, "-o", tmp_path / "out.gif", "--codec", "libx264"], "use --codec gif"),
        "crf": ([small, "-o", tmp_path / "out.mp4", "--crf", -5], "--crf -5: libx264 takes 0 (best) to 51"),
        "crf_unknown": ([small, "-o", tmp_path / "out.mkv", "--codec", "libaom-av1", "--crf", 99],
                        "--crf 99: libaom-av1 does not take it"),
        "one_frame": ([broken["one"], "-o", tmp_path / "out.mp4"],
                      "one.mp4 has 1 frame; interpolation needs at least 2"),
        "end_alone": ([small, "-o", tmp_path / "out.mp4", "--end", 100],
                      "error: --end 100: the source has frames 0 to 49"),
        "empty": ([broken["empty"], "-o", tmp_path / "out.mp4"], "holds no streams at all"),
        "empty_track": ([broken["empty_track"], "-o", tmp_path / "out.mp4"], "its video stream holds no frames"),
        "moovless": ([broken["moovless"], "-o", tmp_path / "out.mp4"], "its MP4 index (moov atom) is missing"),
        "nested_folder": ([small, "-o", f"{tmp_path}/missing/nested/"], "the folder"),
    }
    args, message = cases[case]
    result = vsrife("interpolate", *args)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr, result.stderr
    assert not re.search(r"Invalid argument|received no packets|out of range|Invalid track index", result.stderr)
    assert not (tmp_path / "missing").exists()


def test_a_gif_drops_the_audio_with_a_word_and_grey_stays_grey(small: Path, tmp_path: Path) -> None:
    result = vsrife("interpolate", small, "-o", tmp_path / "out.gif", "--end", 3, "-q")
    assert result.returncode == 0, result.stderr
    assert "the audio of small.mp4 fits no .gif file; it is left out" in result.stderr
    assert "Video: gif" in header(tmp_path / "out.gif")
    grey = tmp_path / "grey.mkv"
    ffmpeg("-i", small, "-frames:v", 3, "-pix_fmt", "gray", "-c:v", "ffv1", "-an", grey)
    result = vsrife("interpolate", grey, "-o", tmp_path / "grey.mp4", "-q")
    assert result.returncode == 0 and result.stderr == "", result.stderr  # x264 stores 4:0:0 as it is
