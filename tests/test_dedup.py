"""dedup (held frames become in-betweens, stills cost nothing) and mask (regions kept from the source), for both
filters, on real video: bikes.mp4 from frame 40 (frames 0-39 are the quality gate) made "on twos" and "on threes".

RIFE runs its real 4.0 weights; RRIN runs the cross-fade weights, whose output at t is exactly (1 - t) * a + t * b,
so where each output frame comes from is a known answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import vapoursynth as vs

from conftest import RequestLog, VfiFilter, clip_from_frames, decode_rgb, expect_error, frame_array, psnr, rrin_filter
from testkit.animation import held_indices, on_holds, x264_roundtrip
from vsrife import engine

SIZE = (320, 136)  # bikes.mp4 at half size: real motion, cheap inference
FIRST = 40


@pytest.fixture(scope="module")
def drawings(bikes_path: Path) -> np.ndarray:
    """bikes.mp4 frames 40-52 at 320x136: 13 real frames (four intervals of three)."""
    return np.ascontiguousarray(decode_rgb(bikes_path, FIRST + 13, *SIZE)[FIRST:])


@pytest.fixture
def synthesized(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """The t of every frame the engines synthesize from here on (the net's work, counted where the engine calls it)."""
    calls: list[float] = []
    synthesize = engine.Engine._synthesize_frame

    def counting(self: engine.Engine, source0: engine.SourceFrame, source1: engine.SourceFrame,
                 t: float) -> object:
        calls.append(t)
        return synthesize(self, source0, source1, t)

    monkeypatch.setattr(engine.Engine, "_synthesize_frame", counting)
    yield calls


def rife(clip: vs.VideoNode, **args: object) -> vs.VideoNode:
    return vs.core.vfi.RIFE(clip, device="cpu", precision="fp32", **args)


def _held(count: int, hold: int) -> list[int]:
    """The held frames that have a next drawing."""
    return [k for k, i in enumerate(held_indices(count, hold)) if i != k and i + hold < count]


def _held_scores(frames: np.ndarray, shown: np.ndarray, hold: int, interpolate: Callable[..., vs.VideoNode],
                 **args: object) -> float:
    """Mean PSNR, against the real frames, of the multi=2 outputs at the source positions of held frames."""
    out = interpolate(clip_from_frames(shown), multi=2, **args)
    held = _held(len(frames), hold)
    return float(np.mean([psnr(frame_array(out.get_frame(2 * k)), frames[k].transpose(2, 0, 1)) for k in held]))


def _frame_drop_scores(frames: np.ndarray, shown: np.ndarray, hold: int) -> float:
    """The frame-drop protocol on the drawings: keep every hold-th frame (as shown), interpolate with multi=hold,
    score the in-betweens against the real frames."""
    kept = clip_from_frames(np.ascontiguousarray(shown[::hold]))
    out = rife(kept, multi=hold)
    scores = [psnr(frame_array(out.get_frame(n)), frames[n].transpose(2, 0, 1))
              for n in range(hold * (kept.num_frames - 1)) if n % hold]
    return float(np.mean(scores))


@pytest.mark.parametrize("hold", [2, 3])
@pytest.mark.parametrize("encoding", [None, (23, "medium")], ids=["lossless", "x264-crf23"])
def test_held_frames_become_the_in_betweens_frame_drop_makes(
    drawings: np.ndarray, hold: int, encoding: tuple[int, str] | None
) -> None:
    shown = on_holds(drawings, hold)
    if encoding is not None:
        shown = x264_roundtrip(shown, *encoding)
    dedup = _held_scores(drawings, shown, hold, rife, dedup=1)
    frame_drop = _frame_drop_scores(drawings, shown, hold)
    plain = _held_scores(drawings, shown, hold, rife)
    copies = float(np.mean([psnr(shown[k], drawings[k]) for k in _held(len(drawings), hold)]))
    assert dedup >= frame_drop - 0.05, (dedup, frame_drop)
    assert dedup > plain + 3.0 and dedup > copies + 3.0, (dedup, plain, copies)


def test_a_still_is_returned_as_it_is_without_inference(drawings: np.ndarray, synthesized: list[float]) -> None:
    # drawings 0, 1, 2, drawing 2 shown for 7 frames (a still with dedup_max=3), then drawings 3 and 4
    order = [0, 1, 2, 2, 2, 2, 2, 2, 2, 3, 4]
    source = clip_from_frames(np.ascontiguousarray(drawings[order]))
    out = rife(source, multi=2, dedup=1, dedup_max=3)
    for n in range(4, 17):  # source positions 2 .. 8: the still, up to its last frame
        assert np.array_equal(frame_array(out.get_frame(n)), frame_array(source.get_frame(n // 2))), n
    assert synthesized == []
    # from the still's last frame to the next drawing: one ordinary in-between
    moving = frame_array(out.get_frame(17))
    assert synthesized == [0.5] and not np.array_equal(moving, frame_array(source.get_frame(8)))


def test_held_runs_up_to_dedup_max_are_drawings_and_requests_stay_bounded(
    drawings: np.ndarray, request_log: RequestLog, synthesized: list[float]
) -> None:
    order = [0, 0, 0, 0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3]  # a hold of 4 frames, then a still of 8
    source, requested = request_log(clip_from_frames(np.ascontiguousarray(drawings[order])))
    dedup_max = 4
    out = rife(source, multi=2, dedup=1, dedup_max=dedup_max)
    # the hold of 4: positions 0.5 .. 3.5 between drawings 0 (frame 0) and 1 (frame 4), t = s / 4
    for n in range(1, 8):
        out.get_frame(n)
    assert synthesized == [s / 8 for s in range(1, 8)]
    # a new filter for each frame (its internal caches empty): what one frame asks of the source
    for n in (1, 3, 7, 11, 13, 17, 19, 23, 25):
        requested.clear()
        rife(source, multi=2, dedup=1, dedup_max=dedup_max).get_frame(n)
        wanted = sorted(set(requested))
        assert wanted[-1] - wanted[0] + 1 <= dedup_max + 2, (n, wanted)


@pytest.mark.parametrize("rate", [{"multi": 2}, {"factor_num": 5, "factor_den": 2}], ids=["multi2", "factor5/2"])
def test_known_answer_on_threes_for_rrin(rrin_crossfade_weights: Path, drawings: np.ndarray,
                                         rate: dict[str, int]) -> None:
    rrin = rrin_filter(rrin_crossfade_weights)
    frames = np.ascontiguousarray(drawings[:7, :64, :96])
    shown = on_holds(frames, 3)  # drawings 0, 3, 6
    out = rrin(clip_from_frames(shown), dedup=1, device="cpu", precision="fp32", **rate)
    factor = Fraction(rate.get("factor_num", rate.get("multi", 0)), rate.get("factor_den", 1))
    for n in range(out.num_frames):
        position = min(Fraction(n) / factor, Fraction(6))
        a = 3 * int(position // 3)
        t = float((position - a) / 3)
        expected = (1 - t) * shown[a] + t * shown[min(a + 3, 6)]
        assert np.abs(frame_array(out.get_frame(n)) - expected.transpose(2, 0, 1)).max() < 1e-5, n


@pytest.mark.parametrize("yuv", [False, True], ids=["RGBS", "YUV444P16"])
def test_scene_cuts_win_over_dedup(drawings: np.ndarray, yuv: bool) -> None:
    other = np.ascontiguousarray(1.0 - drawings[5])  # a different scene
    frames = np.stack([drawings[0], drawings[0], other, other])
    source = clip_from_frames(frames)
    if yuv:  # the selector then swaps in source frame 0 for outputs at positions 1 and 1.5
        source = source.resize.Point(format=vs.YUV444P16, matrix_s="709")
    out = rife(source, multi=2, dedup=1, sc=1)
    for n in (1, 2, 3):  # between drawing 0 and the cut: frame 0 again
        assert np.array_equal(frame_array(out.get_frame(n)), frame_array(source.get_frame(0))), n


def test_dedup_through_the_yuv_path_returns_source_frames_untouched(bikes_path: Path) -> None:
    source = vs.core.bs.VideoSource(str(bikes_path))[FIRST : FIRST + 3].resize.Bilinear(160, 68)
    held = source[0] + source[0] + source[0] + source[1] + source[2]  # a still with dedup_max=2
    out = rife(held, multi=2, dedup=1, dedup_max=2)
    for n in range(0, 5):
        assert np.array_equal(frame_array(out.get_frame(n)), frame_array(held.get_frame(n // 2))), n
    assert out.get_frame(7).format.id == held.format.id


# ---------------------------------------------------------------------------------------------- mask


def _mask(value: np.ndarray, fmt: int) -> vs.VideoNode:
    """A one-frame GRAY clip holding `value` (h, w)."""
    height, width = value.shape
    blank = vs.core.std.BlankClip(format=fmt, width=width, height=height, length=1)

    def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        np.copyto(np.asarray(out[0]), value.astype(np.asarray(out[0]).dtype))
        return out

    return blank.std.ModifyFrame(clips=blank, selector=fill)


def test_mask_keeps_or_synthesizes_per_pixel(drawings: np.ndarray) -> None:
    frames = np.ascontiguousarray(drawings[:3, :64, :96])
    source = clip_from_frames(frames)
    height, width = 64, 96
    plain = [frame_array(rife(source, multi=4).get_frame(n)) for n in (1, 3)]
    zeros = rife(source, multi=4, mask=_mask(np.zeros((height, width)), vs.GRAY8))
    ones = rife(source, multi=4, mask=_mask(np.full((height, width), 65535), vs.GRAY16))
    half = np.zeros((height, width))
    half[:, width // 2 :] = 1.0
    halves = rife(source, multi=4, mask=_mask(half, vs.GRAYS))
    for index, (n, nearest) in enumerate(((1, 0), (3, 1))):  # t = 0.25 keeps frame a, t = 0.75 frame b
        assert np.array_equal(frame_array(zeros.get_frame(n)), frames[nearest].transpose(2, 0, 1)), n
        assert np.array_equal(frame_array(ones.get_frame(n)), plain[index]), n
        split = frame_array(halves.get_frame(n))
        assert np.array_equal(split[:, :, : width // 2], frames[nearest].transpose(2, 0, 1)[:, :, : width // 2])
        assert np.array_equal(split[:, :, width // 2 :], plain[index][:, :, width // 2 :])
    # frames returned as they are stay as they are
    assert np.array_equal(frame_array(ones.get_frame(4)), frames[1].transpose(2, 0, 1))


def test_a_mask_as_long_as_the_clip_is_read_per_source_frame(drawings: np.ndarray) -> None:
    frames = np.ascontiguousarray(drawings[:3, :64, :96])
    per_frame = vs.core.std.Splice([_mask(np.zeros((64, 96)), vs.GRAY8), _mask(np.full((64, 96), 255), vs.GRAY8),
                                    _mask(np.zeros((64, 96)), vs.GRAY8)])
    out = rife(clip_from_frames(frames), multi=2, mask=per_frame)
    plain = rife(clip_from_frames(frames), multi=2)
    assert np.array_equal(frame_array(out.get_frame(1)), frames[1].transpose(2, 0, 1))  # mask frame 0: keep
    assert np.array_equal(frame_array(out.get_frame(3)), frame_array(plain.get_frame(3)))  # mask frame 1: synthesize


def test_bad_dedup_and_mask_values_are_refused_at_creation(vfi: VfiFilter, drawings: np.ndarray) -> None:
    clip = clip_from_frames(np.ascontiguousarray(drawings[:4, :64, :96]))
    expect_error(vfi, "dedup_threshold must be >= 0 and <= 1 (got 1.5)", clip, dedup=1, dedup_threshold=1.5)
    expect_error(vfi, "dedup_threshold must be >= 0 and <= 1 (got -0.1)", clip, dedup_threshold=-0.1)
    expect_error(vfi, "dedup must be 0 or 1 (got 2)", clip, dedup=2)
    expect_error(vfi, "dedup_max must be >= 1 and <= 64 (got 0)", clip, dedup=1, dedup_max=0)
    expect_error(vfi, "mask must have the clip's size 96x64 (got 96x48)", clip,
                 mask=vs.core.std.BlankClip(format=vs.GRAY8, width=96, height=48, length=1))
    expect_error(vfi, "mask must be a GRAY clip of 8-16 bit integer or 16/32 bit float samples (got RGB24)", clip,
                 mask=vs.core.std.BlankClip(format=vs.RGB24, width=96, height=64, length=1))
    expect_error(vfi, "mask must have 1 frame or as many as the clip (4) (got 2)", clip,
                 mask=vs.core.std.BlankClip(format=vs.GRAY8, width=96, height=64, length=2))
