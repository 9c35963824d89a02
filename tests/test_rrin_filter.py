"""core.vfi.RRIN end to end: the real core, the installed plugin, real video, and weight files written here.

RRIN's own trained weights do not ship yet, so these tests load files through model_path: seeded random weights,
and "cross-fade" weights whose last layers are zero, for which RRIN's exact output is known. The contract RRIN shares
with RIFE (mapping, laziness, scene changes, VideoInfo, argument errors) is tested by the RIFE tests parametrized
over both filters (test_filter.py, test_plugin_args.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import vapoursynth as vs

from conftest import (
    VfiFilter,
    clip_from_frames,
    expect_error,
    frame_array,
    frame_drop_psnr,
    psnr,
    rrin_filter,
    shrink,
)
from vsrife.engine import create_engine
from vsrife.models.rrin import (
    ONE_LEVEL_BYTES_PER_PIXEL,
    PYRAMID_BYTES_PER_PIXEL,
    RRIN,
    RRINOfficial,
    auto_flow_levels,
)
from vsrife.registry import MODELS

core = vs.core

# What RRIN's tests run on: bikes.mp4 at a quarter of its size (160x68), cheap enough for a CPU.
DOWNSCALE = 4


@pytest.fixture
def rrin(rrin_weights: Path) -> VfiFilter:
    return rrin_filter(rrin_weights)


@pytest.fixture
def crossfade(rrin_crossfade_weights: Path) -> VfiFilter:
    return rrin_filter(rrin_crossfade_weights)


@pytest.fixture(scope="module")
def bikes_small(bikes_rgb40: np.ndarray) -> np.ndarray:
    """Frames 0-5 of bikes.mp4, 160x68."""
    return shrink(bikes_rgb40[:6], DOWNSCALE)


# ---------------------------------------------------------------------------------------------- errors


def test_models_of_the_other_filter_and_unknown_names_are_refused(rrin: VfiFilter, bikes_small: np.ndarray) -> None:
    clip = clip_from_frames(bikes_small[:2])
    expect_error(rrin, "model '4.0' is a RIFE model; use vfi.RIFE", clip, model="4.0", model_path=None)
    expect_error(rrin, "model '3.1' is a RIFE model; use vfi.RIFE", clip, model="3.1")
    expect_error(rrin, "unknown model '9.9'; available models: rrin, rrin-official, rrin-fork", clip, model="9.9")
    message = expect_error(rrin, "", clip, model="rrin-official", model_path=None)
    assert "model rrin-official has no download we can reach" in message
    assert "HopLee6/RRIN-PyTorch" in message and "model_path=" in message
    expect_error(rrin, "Thomasedv/RRIN", clip, model="rrin-fork", model_path=None)
    expect_error(rrin, "available devices: auto, cpu", clip, device="tpu")


def test_rife_weights_do_not_fit_rrin(rrin: VfiFilter, bikes_small: np.ndarray, tmp_path: Path) -> None:
    rife_like = tmp_path / "flownet.pkl"
    torch.save({"module.block0.conv0.0.0.weight": torch.zeros(1)}, rife_like)
    expect_error(rrin, "the weights do not fit rrin", clip_from_frames(bikes_small[:2]), model_path=str(rife_like))


# The floor for our weights; FFmpeg's minterpolate scores about 34.2 dB and the neighbour average 27.4 dB.
RRIN_QUALITY_FLOOR_DB = 33.0


@pytest.mark.skipif(not MODELS["rrin"].released, reason="our trained RRIN weights are not released yet")
def test_frame_drop_quality_of_our_weights(bikes_rgb40: np.ndarray) -> None:
    score = frame_drop_psnr(bikes_rgb40, "RRIN")
    print(f"RRIN: {score:.2f} dB")
    assert score >= RRIN_QUALITY_FLOOR_DB


@pytest.mark.skipif(MODELS["rrin"].released, reason="the trained RRIN weights ship in the package now")
def test_default_model_asks_for_model_path_until_its_weights_ship(bikes_small: np.ndarray) -> None:
    expect_error(VfiFilter("RRIN"), "the weights of model rrin are not released yet; pass your own weight file "
                 "as model_path=", clip_from_frames(bikes_small[:2]))


# ---------------------------------------------------------------------------------------------- known output


def test_default_model_is_ours_and_outputs_the_crossfade_at_every_t(rrin_crossfade_weights: Path,
                                                                    bikes_small: np.ndarray) -> None:
    """With zeroed heads RRIN is a cross-fade: output n of multi=3 is (1 - t) a + t b, t = n/3 (model="rrin")."""
    clip = clip_from_frames(bikes_small[:3])
    out = core.vfi.RRIN(clip, multi=3, model_path=str(rrin_crossfade_weights), device="cpu", precision="fp32")
    first, second = frame_array(clip.get_frame(0)), frame_array(clip.get_frame(1))
    for n, t in ((1, 1 / 3), (2, 2 / 3)):
        expected = (1 - t) * first + t * second
        assert np.abs(frame_array(out.get_frame(n)) - expected).max() < 1e-5, n


@pytest.mark.parametrize("fmt", [vs.YUV420P8, vs.YUV420P10, vs.YUV444PS, vs.GRAY16, vs.RGB24, vs.RGBH, vs.RGBS],
                         ids=lambda f: core.get_video_format(f).name)
def test_formats_round_trip(crossfade: VfiFilter, bikes_yuv: vs.VideoNode, fmt: int) -> None:
    """Every format goes through RGBS and back: the midpoints equal the neighbours' average in the input format."""
    real = bikes_yuv[:5].resize.Bicubic(160, 68)
    if real.format.id != fmt:
        matrix = {} if vs.core.get_video_format(fmt).color_family != vs.RGB else {"matrix_in_s": "709"}
        real = core.resize.Bicubic(real, format=fmt, **matrix)
    kept = real[0::2]
    out = crossfade(kept, multi=2)
    assert out.format.id == fmt
    assert out.num_frames == 2 * kept.num_frames
    peak = 1.0 if out.format.sample_type == vs.FLOAT else float((1 << out.format.bits_per_sample) - 1)
    for k in range(kept.num_frames - 1):
        a, b = frame_array(kept.get_frame(k)), frame_array(kept.get_frame(k + 1))
        assert np.array_equal(frame_array(out.get_frame(2 * k)), a)
        score = psnr(frame_array(out.get_frame(2 * k + 1)), (a + b) / 2, peak)
        assert score > 40.0, (k, score)


def test_tiles_join_without_seams(crossfade: VfiFilter, rrin: VfiFilter, bikes_small: np.ndarray) -> None:
    """A cross-fade is local, so 64-pixel tiles blended across their overlaps give the one-pass frame exactly."""
    clip = clip_from_frames(bikes_small[:2])
    whole = frame_array(crossfade(clip).get_frame(1))
    tiled = frame_array(crossfade(clip, tile=64, tile_overlap=16).get_frame(1))
    assert np.abs(tiled - whole).max() < 1e-5
    random_tiled = frame_array(rrin(clip, tile=64).get_frame(1))  # default overlap: tile/4
    assert random_tiled.shape == whole.shape and np.isfinite(random_tiled).all()


# ---------------------------------------------------------------------------------------------- other layouts


def reference_output(cls: type[RRIN], state: dict[str, torch.Tensor], clip: vs.VideoNode, t: float,
                     levels: int = 1) -> np.ndarray:
    """The net run directly in torch (fp32) on frames 0 and 1, padded by repeating the border like the engine."""
    net = cls()
    net.load_state_dict({name: value.float() for name, value in state.items()})
    net.flow_levels = levels
    frames = [torch.from_numpy(frame_array(clip.get_frame(i)).astype(np.float32))[None] for i in (0, 1)]
    height, width = frames[0].shape[2:]
    align = net.alignment(1.0)
    pad = (0, -width % align, 0, -height % align)
    with torch.inference_mode():
        result = net.eval()(*(F.pad(f, pad, mode="replicate") for f in frames), t, 1.0, False)
    return result[0, :, :height, :width].numpy().astype(np.float64)


def test_official_and_fork_layouts_load_through_model_path(bikes_small: np.ndarray, tmp_path: Path) -> None:
    """Random weights in the authors' layout (Flow_L.*) and the fork's (Flow.*) give what the nets compute."""
    torch.manual_seed(1)
    official_state = RRINOfficial().state_dict()
    official = tmp_path / "pretrained_model.pth.tar"
    torch.save(official_state, official)
    fork_state = {k.replace("Flow_L.", "Flow.", 1): v for k, v in official_state.items()}
    assert sum(k.startswith("Flow.") for k in fork_state) == sum(k.startswith("Flow_L.") for k in official_state) > 0
    fork = tmp_path / "rrin0042.pth"
    torch.save(fork_state, fork)
    fork_checkpoint = tmp_path / "rrin0043.pth"  # what the fork's train.py saves
    torch.save({"model": fork_state, "optim": {"state": {}, "param_groups": []}, "epoch": 43}, fork_checkpoint)

    clip = clip_from_frames(np.ascontiguousarray(bikes_small[:2, :50, :70]))  # padded to 64x96 inside
    run = {"multi": 4, "device": "cpu", "precision": "fp32"}
    from_official = frame_array(core.vfi.RRIN(clip, model="rrin-official", model_path=str(official), **run)
                                .get_frame(1))
    expected = reference_output(RRINOfficial, official_state, clip, 0.25)
    assert np.abs(from_official - expected).max() < 1e-5
    from_fork_file = frame_array(core.vfi.RRIN(clip, model="rrin-official", model_path=str(fork), **run).get_frame(1))
    assert np.array_equal(from_fork_file, from_official)  # same tensors, other names

    as_fork = frame_array(core.vfi.RRIN(clip, model="rrin-fork", model_path=str(fork_checkpoint), **run)
                          .get_frame(1))
    assert np.array_equal(as_fork, from_official)  # the fork's Net is the authors' with the flow net renamed


def test_fp16_weight_file_runs_in_fp32_and_bf16(rrin_weights: Path, bikes_small: np.ndarray) -> None:
    clip = clip_from_frames(bikes_small[:2])
    results = {p: frame_array(core.vfi.RRIN(clip, model_path=str(rrin_weights), device="cpu", precision=p)
                              .get_frame(1)) for p in ("fp32", "bf16")}
    assert psnr(results["bf16"], results["fp32"]) > 40.0  # 51.8 dB when written


@pytest.mark.cuda
def test_cuda_matches_cpu(rrin_weights: Path, bikes_small: np.ndarray) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device in this machine")
    clip = clip_from_frames(bikes_small[:2])
    run = {"model_path": str(rrin_weights), "precision": "fp32"}
    cpu = frame_array(core.vfi.RRIN(clip, device="cpu", **run).get_frame(1))
    gpu = frame_array(core.vfi.RRIN(clip, device="cuda", **run).get_frame(1))
    assert psnr(gpu, cpu) > 40.0



# ---------------------------------------------------------------------------------------------- coarse to fine


def test_levels_run_the_flow_net_coarse_to_fine(rrin_weights: Path, bikes_small: np.ndarray) -> None:
    """levels=N gives what the net computes with Flow_L over N levels, on frames padded to that pyramid's multiple."""
    clip = clip_from_frames(bikes_small[:2])  # 160x68: padded to 192x128 for four levels
    state = torch.load(rrin_weights, weights_only=True)
    outputs: list[np.ndarray] = []
    for levels in (1, 2, 3, 4):
        out = frame_array(core.vfi.RRIN(clip, levels=levels, model_path=str(rrin_weights), device="cpu",
                                         precision="fp32").get_frame(1))
        assert np.abs(out - reference_output(RRIN, state, clip, 0.5, levels)).max() < 1e-5
        assert all(np.abs(out - earlier).max() > 1e-4 for earlier in outputs)  # each level changes the flows
        outputs.append(out)


@pytest.mark.parametrize(("model", "size", "expected"), [
    ("rrin", (1280, 720), auto_flow_levels(1280, 720)), ("rrin", (160, 68), auto_flow_levels(160, 68)),
    ("rrin-official", (1280, 720), 1), ("rrin-fork", (3840, 2160), 1),
])
def test_automatic_levels(rrin_weights: Path, model: str, size: tuple[int, int], expected: int) -> None:
    """levels=0: ours from the frame size; the authors' weights keep their single pass unless asked."""
    width, height = size
    engine = create_engine(method="rrin", width=width, height=height, sample_type="float32", model=model,
                           model_path=str(rrin_weights), device="cpu", tile=1024)
    assert isinstance(engine.net, RRIN) and engine.net.flow_levels == expected
    asked = create_engine(method="rrin", width=width, height=height, sample_type="float32", model=model,
                          model_path=str(rrin_weights), device="cpu", tile=1024, levels=3)
    assert isinstance(asked.net, RRIN) and asked.net.flow_levels == 3 and asked.align == 64
    # tile=0 plans with the memory of the levels that run (the pyramid's finer levels run both directions at once)
    planned = ONE_LEVEL_BYTES_PER_PIXEL if expected == 1 else PYRAMID_BYTES_PER_PIXEL
    assert engine.net.memory_bytes_per_pixel == planned
    assert asked.net.memory_bytes_per_pixel == PYRAMID_BYTES_PER_PIXEL


def test_levels_errors(rrin: VfiFilter, bikes_small: np.ndarray) -> None:
    clip = clip_from_frames(bikes_small[:2])
    expect_error(rrin, "levels must be 0 (automatic) or >= 1 and <= 4 (got 5)", clip, levels=5)
    expect_error(rrin, "levels must be 0 (automatic) or >= 1 and <= 4 (got -1)", clip, levels=-1)
    expect_error(rrin, "tile must be at least 128", clip, levels=4, tile=64)
    with pytest.raises(vs.Error, match=r"does not take argument.*levels"):
        core.vfi.RIFE(clip, levels=2)
