"""core.vfi.RIFE and core.vfi.RRIN argument checks and output VideoInfo, against the real installed plugin and core.

The argument errors but tile_overlap's rule against tile are raised before the plugin touches Python; that one is
create_engine's (vsrife/rules.py), which fails before it loads a model. The VideoInfo tests create a real engine
(create_engine runs in the filter's constructor) and run only where vsrife.engine imports.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import pytest
import vapoursynth as vs

from conftest import VfiFilter

core = vs.core

FILTER_NAMES = ("RIFE", "RRIN")


def _engine_imports() -> bool:
    try:
        importlib.import_module("vsrife.engine")
    except Exception:
        return False
    return True


needs_engine = pytest.mark.skipif(not _engine_imports(), reason="vsrife.engine does not import here")


def blank(length: int = 10, fps: tuple[int, int] = (25, 1), width: int = 64, height: int = 48,
          format: int = vs.RGBS) -> vs.VideoNode:
    return core.std.BlankClip(format=format, width=width, height=height, length=length,
                              fpsnum=fps[0], fpsden=fps[1])


def variable_rate() -> vs.VideoNode:
    return core.std.Splice([blank(fps=(25, 1)), blank(fps=(30, 1))], mismatch=True)


def variable_format() -> vs.VideoNode:
    return core.std.Splice([blank(format=vs.RGBS), blank(format=vs.YUV420P8)], mismatch=True)


def variable_size() -> vs.VideoNode:
    return core.std.Splice([blank(width=64), blank(width=32)], mismatch=True)


BadCall = tuple[str, Callable[[], vs.VideoNode], dict[str, object], list[str]]

# Bad calls of every filter: (id, clip factory, arguments, substrings the message must contain after the
# "vfi.<name>: " prefix)
BAD_CALLS: list[BadCall] = [
    ("multi-1", blank, {"multi": 1}, ["multi must be an integer >= 2", "got 1"]),
    ("multi-0", blank, {"multi": 0}, ["multi must be an integer >= 2", "got 0"]),
    ("multi-negative", blank, {"multi": -3}, ["multi must be an integer >= 2", "got -3"]),
    ("multi-with-factor", blank, {"multi": 2, "factor_num": 5, "factor_den": 2},
     ["only one of multi, factor_num/factor_den or fps_num/fps_den"]),
    ("multi-with-fps", blank, {"multi": 2, "fps_num": 50, "fps_den": 1}, ["only one of"]),
    ("factor-with-fps", blank, {"factor_num": 5, "factor_den": 2, "fps_num": 50, "fps_den": 1}, ["only one of"]),
    ("multi-with-half-factor", blank, {"multi": 3, "factor_den": 2}, ["only one of"]),
    ("factor-1/1", blank, {"factor_num": 1, "factor_den": 1}, ["factor_num/factor_den must be greater than 1",
                                                             "got 1/1"]),
    ("factor-1/2", blank, {"factor_num": 1, "factor_den": 2}, ["must be greater than 1", "got 1/2"]),
    ("factor-4/4", blank, {"factor_num": 4, "factor_den": 4}, ["must be greater than 1", "got 4/4"]),
    ("factor-zero-num", blank, {"factor_num": 0, "factor_den": 1}, ["factor_num and factor_den must be positive"]),
    ("factor-zero-den", blank, {"factor_num": 5, "factor_den": 0}, ["factor_num and factor_den must be positive"]),
    ("factor-negative", blank, {"factor_num": -5, "factor_den": -2}, ["must be positive", "got -5/-2"]),
    ("factor-num-only", blank, {"factor_num": 5}, ["factor_num and factor_den must be given together"]),
    ("factor-den-only", blank, {"factor_den": 2}, ["factor_num and factor_den must be given together"]),
    ("fps-num-only", blank, {"fps_num": 50}, ["fps_num and fps_den must be given together"]),
    ("fps-den-only", blank, {"fps_den": 1}, ["fps_num and fps_den must be given together"]),
    ("fps-zero", blank, {"fps_num": 0, "fps_den": 1}, ["fps_num and fps_den must be positive"]),
    ("fps-negative-den", blank, {"fps_num": 50, "fps_den": -1}, ["fps_num and fps_den must be positive"]),
    ("fps-variable-rate-clip", variable_rate, {"fps_num": 60, "fps_den": 1},
     ["need a clip with a constant frame rate", "variable", "use multi or factor_num/factor_den"]),
    ("fps-lower", blank, {"fps_num": 24, "fps_den": 1}, ["target frame rate 24/1 must be higher than the clip's 25/1"]),
    ("fps-equal", blank, {"fps_num": 50, "fps_den": 2}, ["target frame rate 50/2 must be higher than the clip's 25/1"]),
    ("factor-too-large", blank, {"multi": 2**40}, ["rate factor is too large"]),
    ("output-too-long", lambda: blank(length=1_000_000), {"multi": 5000}, ["more than 2147483647 frames"]),
    ("sc-2", blank, {"sc": 2}, ["sc must be 0 or 1", "got 2"]),
    ("sc-threshold-0", blank, {"sc": 1, "sc_threshold": 0.0}, ["sc_threshold must be > 0 and <= 1", "got 0",
                                                              "mean absolute difference"]),
    ("sc-threshold-1.5", blank, {"sc": 1, "sc_threshold": 1.5}, ["sc_threshold must be > 0 and <= 1", "got 1.5"]),
    ("sc-threshold-negative", blank, {"sc_threshold": -0.1}, ["sc_threshold must be > 0 and <= 1"]),
    ("variable-format", variable_format, {}, ["the clip must have a constant format"]),
    ("variable-size", variable_size, {}, ["the clip must have a constant frame size"]),
    ("one-frame", lambda: blank(length=1), {}, ["the clip needs at least 2 frames", "it has 1"]),
    ("gray32-integer", lambda: blank(format=vs.GRAY32), {}, ["unsupported sample format (Gray32)",
                                                               "8-16 bit integer"]),
    ("tile-negative", blank, {"tile": -1}, ["tile must be 0 (automatic) or a tile size of at least 64 pixels",
                                            "got -1"]),
    ("tile-63", blank, {"tile": 63}, ["tile must be 0 (automatic) or a tile size of at least 64", "got 63"]),
    ("tile-overlap-negative", blank, {"tile_overlap": -1}, ["tile_overlap must be >= 0", "got -1"]),
    ("tile-overlap-half", blank, {"tile": 128, "tile_overlap": 64},
     ["tile_overlap must be less than tile/2", "got tile_overlap=64 with tile=128"]),
    ("tile-overlap-huge", blank, {"tile": 64, "tile_overlap": 2**62}, ["tile_overlap must be less than tile/2"]),
]

# Bad calls of RIFE only: RRIN has no scale or ensemble argument.
RIFE_BAD_CALLS: list[BadCall] = [
    ("scale-3", blank, {"scale": 3.0}, ["scale must be 0 (automatic, from the frame size) or one of 0.25, 0.5, 1, "
                                        "2, 4", "got 3"]),
    ("scale-0.3", blank, {"scale": 0.3}, ["scale must be 0 (automatic", "got 0.3"]),
    ("scale-negative", blank, {"scale": -1.0}, ["scale must be 0 (automatic", "got -1"]),
    ("ensemble-2", blank, {"ensemble": 2}, ["ensemble must be 0 or 1", "got 2"]),
    ("ensemble-negative", blank, {"ensemble": -1}, ["ensemble must be 0 or 1", "got -1"]),
]

# (filter name, bad call) for every filter
ALL_BAD_CALLS: list[tuple[str, BadCall]] = [(name, call) for name in FILTER_NAMES for call in BAD_CALLS]
ALL_BAD_CALLS += [("RIFE", call) for call in RIFE_BAD_CALLS]


def test_plugin_identity() -> None:
    plugin = core.vfi
    assert plugin.identifier == "com.vapoursynth-vfi.vfi"
    assert plugin.namespace == "vfi"
    assert plugin.name == "Video frame interpolation"
    common = ("clip:vnode", "multi:int:opt", "factor_num:int:opt", "factor_den:int:opt", "fps_num:int:opt",
              "fps_den:int:opt", "model:data:opt", "model_path:data:opt", "sc:int:opt", "sc_threshold:float:opt",
              "device:data:opt", "precision:data:opt", "tile:int:opt", "tile_overlap:int:opt")
    rife_only = ("scale:float:opt", "ensemble:int:opt")
    for argument in common + rife_only:
        assert argument in plugin.RIFE.signature
    for argument in common:
        assert argument in plugin.RRIN.signature
    assert not any(argument in plugin.RRIN.signature for argument in rife_only)
    # Positional callers rely on RIFE's argument order staying what it was before tiling and RRIN came.
    assert plugin.RIFE.signature.startswith("clip:vnode;multi:int:opt;factor_num:int:opt;factor_den:int:opt;"
                                            "fps_num:int:opt;fps_den:int:opt;model:data:opt;model_path:data:opt;"
                                            "scale:float:opt;ensemble:int:opt;sc:int:opt;")


@pytest.mark.parametrize(("name", "call"), ALL_BAD_CALLS, ids=[f"{n}-{c[0]}" for n, c in ALL_BAD_CALLS])
def test_argument_error(name: str, call: BadCall) -> None:
    _, make_clip, kwargs, expected = call
    with pytest.raises(vs.Error) as info:
        getattr(core.vfi, name)(make_clip(), **kwargs)
    message = str(info.value)
    assert message.startswith(f"vfi.{name}: "), message
    for part in expected:
        assert part in message, message
    # The core is still usable after the error.
    assert core.std.BlankClip(length=1).get_frame(0).width == 640


@pytest.mark.parametrize(("argument", "value"), [("scale", 0.5), ("ensemble", 1)])
def test_rrin_has_no_scale_or_ensemble(argument: str, value: object) -> None:
    # The core rejects arguments a function does not declare before the plugin runs, with its own prefix.
    with pytest.raises(vs.Error) as info:
        core.vfi.RRIN(blank(), **{argument: value})
    assert str(info.value) == f"RRIN: Function does not take argument(s) named {argument}"


def test_argument_errors_leave_a_fresh_python_host_alive() -> None:
    """Every bad call in a fresh interpreter: each raises its filter's error and the process exits normally."""
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import vapoursynth as vs
        from test_plugin_args import ALL_BAD_CALLS
        for filter_name, (name, make_clip, kwargs, expected) in ALL_BAD_CALLS:
            try:
                getattr(vs.core.vfi, filter_name)(make_clip(), **kwargs)
            except vs.Error as error:
                assert str(error).startswith(f"vfi.{{filter_name}}: "), (name, str(error))
            else:
                raise SystemExit("no error for " + filter_name + " " + name)
        print("alive", len(ALL_BAD_CALLS))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"alive {len(ALL_BAD_CALLS)}"


def test_argument_error_in_vspipe_is_a_clean_failure(tmp_path: Path) -> None:
    vspipe = Path(sys.executable).with_name("vspipe")
    if not vspipe.exists():
        pytest.skip("no vspipe next to this Python")
    script = tmp_path / "bad.vpy"
    script.write_text(
        "import vapoursynth as vs\n"
        "clip = vs.core.std.BlankClip(format=vs.RGBS, width=64, height=48, length=10)\n"
        "vs.core.vfi.RIFE(clip, multi=1).set_output()\n"
    )
    result = subprocess.run([str(vspipe), "-i", str(script), "-"], capture_output=True, text=True, timeout=300)
    assert result.returncode > 0, (result.returncode, result.stderr)  # an error exit, not a signal
    assert "vfi.RIFE: multi must be an integer >= 2 (got 1)" in result.stderr


VIDEO_INFO_CASES = [
    ("multi-2", 10, (25, 1), {"multi": 2}, 20, Fraction(50)),
    ("multi-3", 10, (25, 1), {"multi": 3}, 30, Fraction(75)),
    ("multi-4", 10, (25, 1), {"multi": 4}, 40, Fraction(100)),
    ("default-is-multi-2", 10, (25, 1), {}, 20, Fraction(50)),
    ("factor-5/2", 10, (25, 1), {"factor_num": 5, "factor_den": 2}, 25, Fraction(125, 2)),
    ("factor-5/2-floor", 7, (25, 1), {"factor_num": 5, "factor_den": 2}, 17, Fraction(125, 2)),
    ("factor-10/4-reduced", 7, (25, 1), {"factor_num": 10, "factor_den": 4}, 17, Fraction(125, 2)),
    ("fps-24000/1001-to-60000/1001", 10, (24000, 1001), {"fps_num": 60000, "fps_den": 1001}, 25,
     Fraction(60000, 1001)),
    ("fps-25-to-60", 10, (25, 1), {"fps_num": 60, "fps_den": 1}, 24, Fraction(60)),
]


@needs_engine
@pytest.mark.parametrize(("length", "fps", "kwargs", "out_length", "out_fps"), [c[1:] for c in VIDEO_INFO_CASES],
                         ids=[c[0] for c in VIDEO_INFO_CASES])
def test_output_video_info(vfi: VfiFilter, length: int, fps: tuple[int, int], kwargs: dict[str, int],
                           out_length: int, out_fps: Fraction) -> None:
    clip = blank(length=length, fps=fps)
    out = vfi(clip, **kwargs)
    assert out.num_frames == out_length
    assert Fraction(out.fps_num, out.fps_den) == out_fps
    assert (out.fps_num, out.fps_den) == (out_fps.numerator, out_fps.denominator)
    assert (out.format.id, out.width, out.height) == (clip.format.id, clip.width, clip.height)
    # Output frame 0 is source frame 0 (no inference); only its duration changes.
    frame = out.get_frame(0)
    assert Fraction(frame.props["_DurationNum"], frame.props["_DurationDen"]) == 1 / out_fps


@needs_engine
def test_output_video_info_variable_rate_stays_variable(vfi: VfiFilter) -> None:
    clip = variable_rate()
    out = vfi(clip, multi=2)
    assert out.num_frames == 2 * clip.num_frames
    assert out.fps_num == 0 and (out.fps_num, out.fps_den) == (clip.fps_num, clip.fps_den)
    # Durations come from each source frame: 1/25 s becomes 1/50 s, 1/30 s becomes 1/60 s.
    first = out.get_frame(0).props
    last = out.get_frame(out.num_frames - 1).props
    assert Fraction(first["_DurationNum"], first["_DurationDen"]) == Fraction(1, 50)
    assert Fraction(last["_DurationNum"], last["_DurationDen"]) == Fraction(1, 60)


@needs_engine
@pytest.mark.parametrize("format", [vs.YUV420P8, vs.YUV422P10, vs.GRAY8, vs.RGB24, vs.RGBH],
                         ids=lambda f: core.get_video_format(f).name)
def test_output_keeps_the_input_format(vfi: VfiFilter, format: int) -> None:
    clip = blank(length=4, format=format)
    out = vfi(clip, multi=2)
    assert (out.format.id, out.width, out.height, out.num_frames) == (format, 64, 48, 8)
    assert Fraction(out.fps_num, out.fps_den) == 50
