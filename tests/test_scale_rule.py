"""scale=0: the flow resolution chosen from the frame size (vsrife.scale.auto_scale), in the engine and the plugin."""

from __future__ import annotations

import math

import numpy as np
import pytest
import vapoursynth as vs

from conftest import clip_from_frames, frame_array, panning_frames
from vsrife.engine import Engine, create_engine, resolve_scale
from vsrife.errors import EngineError
from vsrife.scale import AUTO_SCALE, AUTO_SCALE_LARGEST, AUTO_SCALE_RULE, auto_scale


@pytest.mark.parametrize(("width", "height", "expected"), [
    (64, 48, 2.0), (176, 144, 2.0), (320, 136, 2.0), (320, 144, 2.0),  # tiny: finer flow
    (320, 180, 1.0), (640, 272, 1.0), (1280, 720, 1.0), (1920, 1080, 1.0), (2560, 1440, 1.0), (2560, 1600, 1.0),
    (2560, 1602, 0.5), (3840, 2160, 0.5), (7680, 4320, 0.5),  # beyond 2560x1600: coarser flow, as for 4K
])
def test_auto_scale_by_frame_size(width: int, height: int, expected: float) -> None:
    assert auto_scale(width, height) == expected
    assert auto_scale(height, width) == expected  # by pixel count: portrait frames get what landscape ones do


def test_rule_is_a_staircase_of_powers_of_two() -> None:
    limits = [limit for limit, _ in AUTO_SCALE_RULE]
    scales = [scale for _, scale in AUTO_SCALE_RULE] + [AUTO_SCALE_LARGEST]
    assert limits == sorted(set(limits))
    assert scales == sorted(scales, reverse=True)  # larger frames never get a finer flow
    assert all(math.frexp(s)[0] == 0.5 for s in scales)


def test_resolve_scale() -> None:
    assert resolve_scale(AUTO_SCALE, 176, 144) == 2.0
    assert resolve_scale(AUTO_SCALE, 3840, 2160) == 0.5
    assert resolve_scale(0.25, 176, 144) == 0.25  # an explicit scale is kept whatever the size
    for bad in (3.0, -1.0, 0.3, math.inf, math.nan):
        # the plugin's words (the parameter table's): the engine no longer takes other powers of two
        with pytest.raises(EngineError, match=r"scale must be 0 \(automatic, from the frame size\) or one of 0.25, "
                                              r"0.5, 1, 2, 4"):
            resolve_scale(bad, 64, 48)


def _engine(scale: float, width: int, height: int) -> Engine:
    return create_engine(method="rife", model="4.0", model_path=None, scale=scale, ensemble=False, device="cpu",
                         precision="fp32", width=width, height=height, sample_type="float32", sc_threshold=0.12,
                         tile=0, tile_overlap=64)


def _planes(frame: np.ndarray) -> tuple[tuple[memoryview, int], ...]:
    """A (h, w, 3) frame as the plugin hands it over: each plane's bytes and its stride."""
    return tuple((memoryview(np.ascontiguousarray(frame[:, :, c])).cast("B"), frame.shape[1] * 4) for c in range(3))


def _midpoint(engine: Engine, frames: np.ndarray) -> np.ndarray:
    out = np.zeros((3, *frames.shape[1:3]), dtype=np.float32)
    out_planes = tuple((memoryview(out[c]).cast("B"), frames.shape[2] * 4) for c in range(3))
    assert engine.interpolate(_planes(frames[0]), _planes(frames[1]), out_planes, 0.5, False)
    return out


def test_engine_resolves_auto_once_from_the_frame_size() -> None:
    frames = panning_frames(2, 64, 48, 3)
    auto, explicit = _engine(AUTO_SCALE, 64, 48), _engine(2.0, 64, 48)
    assert (auto.scale, auto.align) == (2.0, explicit.align)
    assert np.array_equal(_midpoint(auto, frames), _midpoint(explicit, frames))
    # creating the engine runs no frame, so a 4K one is cheap to check
    assert _engine(AUTO_SCALE, 3840, 2160).scale == 0.5


def test_engine_refuses_a_scale_that_is_no_power_of_two() -> None:
    with pytest.raises(EngineError, match="got 3"):
        _engine(3.0, 64, 48)


# The plugin tests below need the plugin of this version (scale=0 accepted).


def test_plugin_scale_0_is_the_automatic_scale() -> None:
    clip = clip_from_frames(panning_frames(2, 64, 48, 3))
    common = {"multi": 2, "model": "4.0", "device": "cpu", "precision": "fp32"}
    auto = vs.core.vfi.RIFE(clip, scale=0.0, **common)
    assert np.array_equal(frame_array(auto.get_frame(1)), frame_array(vs.core.vfi.RIFE(clip, scale=2.0, **common)
                                                                       .get_frame(1)))
    assert not np.array_equal(frame_array(auto.get_frame(1)), frame_array(vs.core.vfi.RIFE(clip, **common)
                                                                           .get_frame(1)))


def test_plugin_refuses_other_scales_naming_auto() -> None:
    clip = vs.core.std.BlankClip(format=vs.RGBS, width=64, height=48, length=3)
    for bad in (3.0, 0.3, -1.0):
        with pytest.raises(vs.Error, match=r"^vfi\.RIFE: scale must be 0 \(automatic, from the frame size\) or one "
                                           r"of 0\.25, 0\.5, 1, 2, 4 \(got "):
            vs.core.vfi.RIFE(clip, scale=bad)
