"""Per-source-frame work: each source frame is converted to a tensor and (RIFE 4.7+) encoded once, kept for the
frames still needed.

The engine keys its FrameCache by the source frame numbers the plugin passes; the tests count the encoder's real
forward calls (a forward hook) and compare with the frames the net computes for itself.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import vapoursynth as vs

from conftest import clip_from_frames, frame_array, panning_frames
from vsrife.engine import SOURCE_CACHE_FRAMES, Engine, create_engine
from vsrife.frame_cache import FrameCache
from vsrife.models import ARCHITECTURES
from vsrife.models.rife_v4_5 import Encoder

WIDTH, HEIGHT = 96, 64
COUNT = 6


@pytest.fixture(scope="module")
def weights_425(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seeded random weights for 4.25 (the net's own initialisation), passed as model_path."""
    torch.manual_seed(5)
    path = tmp_path_factory.mktemp("w") / "flownet_v4.25.pkl"
    torch.save(ARCHITECTURES["rife-4.25"]().state_dict(), path)
    return path


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return panning_frames(COUNT, WIDTH, HEIGHT, 2)


@pytest.fixture
def encoder_calls() -> Iterator[list[tuple[int, ...]]]:
    """The input shapes of every Encoder forward pass in this process while the test runs."""
    calls: list[tuple[int, ...]] = []

    def record(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], _output: object) -> None:
        if isinstance(module, Encoder):
            calls.append(tuple(inputs[0].shape))

    handle = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        yield calls
    finally:
        handle.remove()


def test_frame_cache_keeps_the_most_recently_used_keys() -> None:
    cache: FrameCache[int, str] = FrameCache(2)
    computed: list[int] = []

    def value(key: int) -> str:
        computed.append(key)
        return f"v{key}"

    assert [cache.get(k, functools.partial(value, k)) for k in (0, 1, 0, 2, 0, 1)] == ["v0", "v1", "v0", "v2", "v0",
                                                                                       "v1"]
    assert computed == [0, 1, 2, 1]  # 1 was dropped when 2 came (0 had been used since), then computed again
    assert cache.keys() == [0, 1]
    with pytest.raises(ValueError, match="at least 1"):
        FrameCache(0)


def _engine(weights: Path, tile: int = 0) -> Engine:
    return create_engine(method="rife", model="4.25", model_path=str(weights), scale=1.0, ensemble=False,
                         device="cpu", precision="fp32", width=WIDTH, height=HEIGHT, sample_type="float32",
                         sc_threshold=0.12, tile=tile, tile_overlap=16)


def _planes(frame: np.ndarray) -> tuple[tuple[memoryview, int], ...]:
    """A frame as the plugin hands it over: each plane's bytes and its stride."""
    return tuple((memoryview(np.ascontiguousarray(frame[:, :, c])).cast("B"), WIDTH * 4) for c in range(3))


def _count_conversions(engine: Engine) -> list[int]:
    """Record each conversion of a frame's planes into a tensor (the engine's own method, still run)."""
    calls: list[int] = []
    convert = engine._frame_to_tensor

    def counted(frame: tuple[tuple[memoryview, int], ...]) -> torch.Tensor:
        calls.append(1)
        return convert(frame)

    vars(engine)["_frame_to_tensor"] = counted  # the instance's attribute shadows the class's method
    return calls


def _interpolate(engine: Engine, frames: np.ndarray, numbered: bool) -> np.ndarray:
    """Frames at t = 1/4, 2/4, 3/4 between every neighbouring pair, in order (as multi=4 asks for them)."""
    results = []
    for a in range(len(frames) - 1):
        for t in (0.25, 0.5, 0.75):
            out = np.zeros((3, HEIGHT, WIDTH), dtype=np.float32)
            out_planes = tuple((memoryview(out[c]).cast("B"), WIDTH * 4) for c in range(3))
            engine.interpolate(_planes(frames[a]), _planes(frames[a + 1]), out_planes, t, False,
                               (a, a + 1) if numbered else None)
            results.append(out)
    return np.stack(results)


@pytest.mark.parametrize("tile", [0, 64], ids=["one-pass", "tiles"])
def test_each_source_frame_is_encoded_once(weights_425: Path, frames: np.ndarray,
                                           encoder_calls: list[tuple[int, ...]], tile: int) -> None:
    engine = _engine(weights_425, tile)
    conversions = _count_conversions(engine)
    tiles = 1 if tile == 0 else 2  # 96 columns in two tiles of 64, 64 rows in one
    assert engine.sources.capacity == SOURCE_CACHE_FRAMES
    cached = _interpolate(engine, frames, numbered=True)
    assert len(encoder_calls) == COUNT * tiles
    assert len(conversions) == COUNT  # each source frame's planes become a tensor once
    assert engine.sources.keys() == list(range(COUNT - SOURCE_CACHE_FRAMES, COUNT))  # bounded: the latest ones

    encoder_calls.clear()
    anonymous_engine = _engine(weights_425, tile)
    conversions = _count_conversions(anonymous_engine)
    anonymous = _interpolate(anonymous_engine, frames, numbered=False)
    assert len(encoder_calls) == (COUNT - 1) * 3 * 2 * tiles  # without frame numbers: both frames, every time
    assert len(conversions) == (COUNT - 1) * 3 * 2
    assert np.array_equal(cached, anonymous)  # same features, same frames
    assert np.abs(cached[1] - (frames[0] + frames[1]).transpose(2, 0, 1) / 2).mean() > 1e-3


@pytest.mark.skipif(vs.core.vfi.version < (0, 2),
                    reason="the installed libvfi.so predates source frame numbers (plugin 0.2): rebuild it")
def test_the_plugin_passes_source_frame_numbers(weights_425: Path, frames: np.ndarray,
                                                encoder_calls: list[tuple[int, ...]]) -> None:
    clip = clip_from_frames(frames)
    rife = vs.core.vfi.RIFE(clip, model="4.25", model_path=str(weights_425), multi=4, device="cpu",
                            precision="fp32")
    out = [frame_array(rife.get_frame(n)) for n in range(rife.num_frames)]
    assert len(encoder_calls) == COUNT  # one encoder pass per source frame, for 15 interpolated frames
    direct = _interpolate(_engine(weights_425), frames, numbered=False)
    interpolated = np.stack([out[n] for n in range(rife.num_frames) if n % 4 and n < 4 * (COUNT - 1)])
    assert np.abs(interpolated - direct).max() < 1e-6
