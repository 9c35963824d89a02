"""Property-based: any argument set and clip either gives the clip the README promises or a `vfi.RIFE:` error.

Hypothesis draws formats, sizes from 1x1 up, lengths, rates, models, devices, precisions, tiling and colour
properties. Derandomized and bounded (FUZZ_EXAMPLES draws) so that CI sees the same cases every run, in well
under two minutes. Interesting cases it found are kept as plain tests below it.
"""

from __future__ import annotations

import os
from fractions import Fraction
from typing import Any

import numpy as np
import vapoursynth as vs
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

core = vs.core
FUZZ_EXAMPLES = int(os.environ.get("VSRIFE_FUZZ_EXAMPLES", "600"))

FORMATS = [vs.RGBS, vs.RGBH, vs.RGB24, vs.RGB30, vs.RGB48, vs.YUV420P8, vs.YUV420P10, vs.YUV422P8, vs.YUV444P16,
           vs.YUV444PS, vs.YUV410P8, vs.GRAY8, vs.GRAY16, vs.GRAYS, vs.GRAYH, vs.YUV444PH]
COLOUR = {
    "_Matrix": st.sampled_from([0, 1, 2, 5, 6, 9, 10, 99]),
    "_Range": st.sampled_from([0, 1, 7]),
    "_ChromaLocation": st.sampled_from([0, 1, 2, 5, 9]),
    "_Primaries": st.sampled_from([1, 2, 9]),
    "_Transfer": st.sampled_from([1, 2, 16]),
}


@st.composite
def clips(draw: st.DrawFn) -> vs.VideoNode:
    clip_format = draw(st.sampled_from(FORMATS))
    info = core.get_video_format(clip_format)
    step_w, step_h = 1 << info.subsampling_w, 1 << info.subsampling_h
    width = step_w * draw(st.integers(1, 80 // step_w))
    height = step_h * draw(st.integers(1, 48 // step_h))
    length = draw(st.integers(1, 5))
    fps = draw(st.sampled_from([(25, 1), (24000, 1001), (1, 1), (0, 1), (60, 1)]))
    peak = (1 << info.bits_per_sample) - 1 if info.sample_type == vs.INTEGER else 1.0
    shades = [[draw(st.floats(0.0, 1.0)) * peak for _ in range(info.num_planes)] for _ in range(2)]
    if info.sample_type == vs.INTEGER:
        shades = [[round(value) for value in shade] for shade in shades]
    # Two shades, alternating frame by frame, so that neighbouring frames differ.
    clip = core.std.Interleave([core.std.BlankClip(format=clip_format, width=width, height=height, length=length,
                                                   fpsnum=fps[0], fpsden=fps[1], color=shade) for shade in shades])
    clip = clip[:length] if fps[0] == 0 else clip[:length].std.AssumeFPS(fpsnum=fps[0], fpsden=fps[1])
    props = {key: draw(value) for key, value in COLOUR.items() if draw(st.booleans())}
    return clip.std.SetFrameProps(**props) if props else clip


@st.composite
def arguments(draw: st.DrawFn) -> dict[str, Any]:
    args: dict[str, Any] = {}
    # Mostly valid rates, so that most draws render; the rest probe the argument checks.
    rate = draw(st.sampled_from(["none", "multi", "multi", "factor", "factor", "fps", "multi+fps",
                                 "factor_num_only"]))
    if "multi" in rate:
        args["multi"] = draw(st.sampled_from([2, 3, 4, 5, 1, -1]))
    if rate == "factor":
        args["factor_num"], args["factor_den"] = draw(st.sampled_from([(5, 2), (3, 2), (7, 3), (4, 1), (1, 1),
                                                                        (-1, 2), (3, 0)]))
    if "fps" in rate:
        args["fps_num"], args["fps_den"] = draw(st.sampled_from([(50, 1), (60000, 1001), (10, 1), (0, 1), (1, 0)]))
    if rate == "factor_num_only":
        args["factor_num"] = 3
    optional = {
        "model": st.sampled_from(["4.0", "3.5", "3.8", "3.1", "4.0", "9.9", "", "rrin"]),
        "scale": st.sampled_from([0.25, 0.5, 1.0, 2.0, 4.0, 0.0, 0.3, -1.0]),
        "ensemble": st.sampled_from([0, 1, 0, -1, 2]),
        "sc": st.sampled_from([0, 1, 1, -1, 2]),
        "sc_threshold": st.sampled_from([0.05, 0.12, 1.0, 0.0, 1.5]),
        "device": st.sampled_from(["cpu", "auto", "cpu", "cuda:3", "nonsense"]),
        "precision": st.sampled_from(["fp32", "bf16", "auto", "fp16", "fp8"]),
        "tile": st.sampled_from([0, 64, 100, 256, 32, -5]),
        "tile_overlap": st.sampled_from([0, 16, 64, 200, -1]),
    }
    for key, strategy in optional.items():
        if draw(st.integers(0, 3)) == 0:
            args[key] = draw(strategy)
    return args


def expected_factor(args: dict[str, Any], clip: vs.VideoNode) -> Fraction:
    if "multi" in args:
        return Fraction(args["multi"])
    if "factor_num" in args:
        return Fraction(args["factor_num"], args["factor_den"])
    if "fps_num" in args:
        return Fraction(args["fps_num"], args["fps_den"]) / Fraction(clip.fps_num, clip.fps_den)
    return Fraction(2)


def check_call(clip: vs.VideoNode, args: dict[str, Any]) -> str:
    """The property: a clip as the README describes (and a frame that renders), or a vfi.RIFE: error.

    Returns "refused" or "rendered".
    """
    try:
        out = core.vfi.RIFE(clip, **args)
    except vs.Error as exc:
        assert str(exc).startswith("vfi.RIFE: "), str(exc)
        return "refused"
    factor = expected_factor(args, clip)
    assert factor > 1
    assert out.num_frames == clip.num_frames * factor.numerator // factor.denominator
    assert out.format.id == clip.format.id and (out.width, out.height) == (clip.width, clip.height)
    if clip.fps_num:
        assert Fraction(out.fps_num, out.fps_den) == Fraction(clip.fps_num, clip.fps_den) * factor
    else:  # variable frame rate stays variable
        assert out.fps_num == 0
    # The first synthesized position (or the last frame when every position is a source frame).
    n = next((k for k in range(out.num_frames) if (k * factor.denominator) % factor.numerator), out.num_frames - 1)
    frame = out.get_frame(n)
    assert frame.format.id == clip.format.id
    for plane in range(frame.format.num_planes):
        assert np.isfinite(np.asarray(frame[plane], dtype=np.float64)).all()
    return "rendered"


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(clip=clips(), args=arguments())
def test_every_call_is_a_promised_clip_or_a_clear_error(clip: vs.VideoNode, args: dict[str, Any]) -> None:
    event(check_call(clip, args))  # --hypothesis-show-statistics counts both outcomes


# ---------------------------------------------------------------------------------------------- found by the fuzzer


def test_variable_rate_1x1_clip_stays_variable() -> None:
    """Found by the fuzzer (as a wrong assumption of the property): a variable-rate clip stays variable."""
    clip = core.std.BlankClip(format=vs.RGBS, width=1, height=1, length=2, fpsnum=0, fpsden=1)
    assert check_call(clip, {"model": "4.0"}) == "rendered"
    assert core.vfi.RIFE(clip).fps_num == 0


def test_one_pixel_yuv410_clip_renders() -> None:
    """The smallest subsampled frame (4x4 luma, 1x1 chroma) goes through the RGB round trip."""
    clip = core.std.BlankClip(format=vs.YUV410P8, width=4, height=4, length=3, color=[40, 100, 200])
    assert check_call(clip, {"multi": 3, "sc": 1}) == "rendered"


def test_grey_clip_with_a_constant_luminance_matrix_renders() -> None:
    """Found by the fuzzer: GRAY8 tagged _Matrix=10 failed on the way back from RGB at the first frame request."""
    clip = core.std.BlankClip(format=vs.GRAY8, width=1, height=1, length=2).std.SetFrameProps(_Matrix=10)
    assert check_call(clip, {"model": "4.0", "scale": 0.25, "sc_threshold": 0.05}) == "rendered"
