"""Colour through the YUV path: repeated frames are the source frames, interpolated ones keep its description."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import vapoursynth as vs

core = vs.core
COLOUR_PROPS = ("_Matrix", "_Primaries", "_Transfer", "_Range", "_ColorRange", "_ChromaLocation")


@pytest.fixture(scope="module")
def yuv_clip(bikes_path: Path) -> vs.VideoNode:
    """6 frames of bikes.mp4 as decoded (YUV420P8 with BestSource's colour properties), cropped small."""
    return core.bs.VideoSource(str(bikes_path))[:6].std.Crop(right=640 - 128, bottom=272 - 96)


def planes(frame: vs.VideoFrame) -> list[np.ndarray]:
    return [np.asarray(frame[p]).copy() for p in range(frame.format.num_planes)]


def colour(frame: vs.VideoFrame) -> dict[str, int]:
    return {key: int(frame.props[key]) for key in COLOUR_PROPS if key in frame.props}


def assert_is_source_frame(out: vs.VideoFrame, source: vs.VideoFrame) -> None:
    assert all(np.array_equal(a, b) for a, b in zip(planes(out), planes(source), strict=True))
    assert colour(out) == colour(source)


@pytest.mark.parametrize("filter_name", ["RIFE", "RRIN"])
def test_flagged_scene_change_repeats_the_source_frame(yuv_clip: vs.VideoNode, filter_name: str,
                                                       rrin_weights: Path) -> None:
    flagged = yuv_clip.std.SetFrameProps(_SceneChangeNext=1)
    args = {"model_path": str(rrin_weights)} if filter_name == "RRIN" else {}
    doubled = getattr(core.vfi, filter_name)(flagged, multi=2, sc=1, device="cpu", **args)
    for k in range(yuv_clip.num_frames - 1):
        assert_is_source_frame(doubled.get_frame(2 * k + 1), flagged.get_frame(k))


def test_detected_scene_change_repeats_the_source_frame(yuv_clip: vs.VideoNode) -> None:
    # An inverted copy of frame 0 after frame 0: the built-in detector sees a cut.
    inverted = yuv_clip[0].std.Invert()
    cut = yuv_clip[0] + inverted
    doubled = core.vfi.RIFE(cut, multi=2, sc=1, device="cpu")
    assert_is_source_frame(doubled.get_frame(1), cut.get_frame(0))


def test_interpolated_frames_keep_the_source_colour_description(yuv_clip: vs.VideoNode) -> None:
    described = yuv_clip.std.SetFrameProps(_Primaries=9, _Transfer=16)  # BT.2020 / PQ tags, matrix left as decoded
    doubled = core.vfi.RIFE(described, multi=2, device="cpu")
    source, interpolated = described.get_frame(0), doubled.get_frame(1)
    assert colour(interpolated) == colour(source)
    assert colour(source)["_Primaries"] == 9 and "_Matrix" in colour(source)
    assert not all(np.array_equal(a, b) for a, b in zip(planes(interpolated), planes(source), strict=True))


def test_absent_colour_props_stay_absent(yuv_clip: vs.VideoNode) -> None:
    bare = yuv_clip.std.RemoveFrameProps(["_Primaries", "_Transfer", "_Matrix"])
    interpolated = core.vfi.RIFE(bare, multi=2, device="cpu").get_frame(1)
    assert not {"_Primaries", "_Transfer", "_Matrix"} & set(interpolated.props)


@pytest.mark.parametrize("filter_name", ["RIFE", "RRIN"])
def test_invalid_matrix_fails_at_creation(yuv_clip: vs.VideoNode, filter_name: str) -> None:
    with pytest.raises(vs.Error, match=rf"^vfi\.{filter_name}: cannot convert the clip to RGB .*_Matrix=0"):
        getattr(core.vfi, filter_name)(yuv_clip.std.SetFrameProps(_Matrix=0), multi=2, device="cpu",
                                       model_path="unused.pth" if filter_name == "RRIN" else None)
