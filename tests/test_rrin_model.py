"""RRIN (vsrife.models.rrin) against the authors' published layout and the formulas of their model.py.

The expected state-dict layout below is written from the authors' code (HopLee6/RRIN-PyTorch, unet.py: down blocks
of two 3x3 convs with 2**(5+i) channels, a 3x3 midconv, up blocks of bilinear x2 + 3x3 conv and a conv block over
the skip concatenation, a 3x3 head; model.py: Net = Mask UNet(16,2,4), Flow_L UNet(6,4,5), refine_flow
UNet(10,4,4), final UNet(9,3,4), registered in that order), not from vsrife's UNet class.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from testkit import rrin_authors
from vsrife import weights
from vsrife.models import build_model
from vsrife.models.rrin import RRIN, RRINOfficial, coarse_to_fine, pyramid_alignment, warp_zeros

Layout = list[tuple[str, tuple[int, ...]]]

# (attribute name in the authors' Net, in channels, out channels, depth), in their registration order
OFFICIAL_SUBNETS = (("Mask", 16, 2, 4), ("Flow_L", 6, 4, 5), ("refine_flow", 10, 4, 4), ("final", 9, 3, 4))
OFFICIAL_PARAMETERS = 19_194_445


def _conv(name: str, cin: int, cout: int) -> Layout:
    return [(f"{name}.weight", (cout, cin, 3, 3)), (f"{name}.bias", (cout,))]


def official_unet_layout(prefix: str, in_channels: int, n_classes: int, depth: int) -> Layout:
    """Key names and shapes of the authors' UNet(in_channels, n_classes, depth) with wf=5, in registration order."""
    layout: Layout = []
    prev = in_channels
    for i in range(depth):
        width = 2 ** (5 + i)
        layout += _conv(f"{prefix}.down_path.{i}.block.0", prev, width)  # .1 is the LeakyReLU
        layout += _conv(f"{prefix}.down_path.{i}.block.2", width, width)
        prev = width
    layout += _conv(f"{prefix}.midconv", prev, prev)
    for j, i in enumerate(reversed(range(depth - 1))):
        width = 2 ** (5 + i)
        layout += _conv(f"{prefix}.up_path.{j}.up.1", prev, width)  # .0 is the Upsample
        # the conv block sees the upsampled features and the skip: width + width = prev channels
        layout += _conv(f"{prefix}.up_path.{j}.conv_block.block.0", prev, width)
        layout += _conv(f"{prefix}.up_path.{j}.conv_block.block.2", width, width)
        prev = width
    layout += _conv(f"{prefix}.last", prev, n_classes)
    return layout


def official_layout() -> Layout:
    return [entry for name, cin, cout, depth in OFFICIAL_SUBNETS for entry in official_unet_layout(name, cin, cout,
                                                                                                    depth)]


def random_official_state(seed: int = 0) -> dict[str, Tensor]:
    """A state dict in the authors' layout with random values (weights small enough to keep activations sane)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in official_layout():
        fan_in = shape[1] * 9 if len(shape) == 4 else 1
        state[name] = torch.randn(shape, generator=generator) / fan_in**0.5 * (1.0 if len(shape) == 4 else 0.05)
    return state


def _frames(seed: int, height: int = 64, width: int = 96) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    base = F.interpolate(torch.rand(2, 3, height // 8, width // 8, generator=generator), size=(height, width),
                         mode="bilinear", align_corners=False)
    return base[:1].contiguous(), base[1:].contiguous()


# ------------------------------------------------------------------------------------------------- layout


def test_layout_matches_the_authors_net_exactly() -> None:
    expected = official_layout()
    ours = [(name, tuple(value.shape)) for name, value in RRIN().state_dict().items()]
    assert ours == expected  # names, shapes and order
    assert sum(torch.Size(shape).numel() for _, shape in expected) == OFFICIAL_PARAMETERS
    assert sum(p.numel() for p in RRIN().parameters()) == OFFICIAL_PARAMETERS
    # the three variants differ only in behaviour, never in layout
    for cls in (RRINOfficial,):
        assert [(k, tuple(v.shape)) for k, v in cls().state_dict().items()] == expected


def test_official_file_loads_strictly_through_build_model_and_the_weight_loader(tmp_path: Path) -> None:
    state = random_official_state()
    path = tmp_path / "pretrained_model.pth.tar"
    torch.save(state, path)
    direct = build_model("rrin-official", {"model": torch.load(path, weights_only=True)})
    loaded = build_model("rrin-official", weights.load_state_dicts({"model": path}))
    for model in (direct, loaded):
        assert isinstance(model, RRINOfficial)
        assert not model.training
        got = model.state_dict()
        assert list(got) == list(state)
        assert all(torch.equal(got[k], state[k]) for k in state)


def test_fork_and_data_parallel_names_load(tmp_path: Path) -> None:
    state = random_official_state(1)
    fork = {("module." if i % 2 else "") + k.replace("Flow_L.", "Flow.", 1): v
            for i, (k, v) in enumerate(state.items())}
    assert any(k.startswith("Flow.") for k in fork) and not any(k.startswith("Flow_L.") for k in fork)
    path = tmp_path / "fork.pth"
    torch.save(fork, path)
    for architecture in ("rrin-fork", "rrin", "rrin-official"):
        model = build_model(architecture, weights.load_state_dicts({"model": path}))
        got = model.state_dict()
        assert all(torch.equal(got[k], state[k]) for k in state), architecture


def test_missing_key_fails_with_its_name(tmp_path: Path) -> None:
    state = random_official_state()
    del state["Mask.midconv.bias"]
    path = tmp_path / "missing.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"rrin-official.*missing keys: Mask\.midconv\.bias"):
        build_model("rrin-official", weights.load_state_dicts({"model": path}))


def test_misshaped_key_fails_with_both_shapes(tmp_path: Path) -> None:
    state = random_official_state()
    state["final.last.weight"] = torch.zeros(4, 32, 3, 3)
    path = tmp_path / "misshaped.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"shape mismatch: final\.last\.weight \(4, 32, 3, 3\) != \(3, 32, 3, 3\)"):
        build_model("rrin", weights.load_state_dicts({"model": path}))


def test_unexpected_key_fails(tmp_path: Path) -> None:
    state = random_official_state()
    state["Flow_R.last.bias"] = torch.zeros(4)
    with pytest.raises(ValueError, match=r"unexpected keys: Flow_R\.last\.bias"):
        build_model("rrin-official", {"model": state})


# ------------------------------------------------------------------------------------------------- variants


@torch.no_grad()
def test_every_variant_adds_the_residue_and_only_the_grid_differs() -> None:
    state = random_official_state(2)
    img0, img1 = _frames(3)
    official = build_model("rrin-official", {"model": state})
    ours = build_model("rrin", {"model": state})
    fork = build_model("rrin-fork", {"model": state})
    assert type(official) is RRINOfficial and type(fork) is RRINOfficial and type(ours) is RRIN
    for t in (0.5, 0.3):
        for net in (ours, official):
            out = net.estimate(img0, img1, t)
            expected = (net.final(torch.cat((img0, img1, out.blend), 1)) + out.blend).clamp(0, 1)
            assert torch.equal(net(img0, img1, t, 1.0, False), expected)
            assert (out.output - out.blend).abs().max() > 1e-3  # the residue does something with these weights
        # the two grids differ, so the blends differ
        assert (ours.estimate(img0, img1, t).blend - official.estimate(img0, img1, t).blend).abs().max() > 1e-4


# ------------------------------------------------------------------------------------------------- the authors' code

RECORDED = json.loads(rrin_authors.FIXTURE.with_suffix(".json").read_text())
CASES = [(height, width, t) for height, width in rrin_authors.SIZES for t in rrin_authors.TIMES]


@pytest.fixture(scope="module")
def recorded_outputs() -> dict[str, np.ndarray]:
    with np.load(rrin_authors.FIXTURE.with_suffix(".npz")) as arrays:
        return {name: arrays[name] for name in arrays.files}


def test_the_recording_is_of_the_pinned_published_code() -> None:
    assert RECORDED["official_commit"] == "e868adb943f55a0f0f622c1db966e2f5c80835b7"  # the head their demo loads
    assert RECORDED["fork_commit"] == "180161febc64b87f9993cd5ec99b8be64cf08645"
    assert RECORDED["fork_equals_official"]  # so one set of outputs serves both
    assert (RECORDED["weight_seed"], RECORDED["frame_seed"]) == (rrin_authors.WEIGHT_SEED, rrin_authors.FRAME_SEED)


@torch.no_grad()
@pytest.mark.parametrize("architecture, flow_name", [("rrin-official", "Flow_L"), ("rrin-fork", "Flow")])
@pytest.mark.parametrize("height, width, t", CASES)
def test_matches_the_published_forward(architecture: str, flow_name: str, height: int, width: int, t: float,
                                       recorded_outputs: dict[str, np.ndarray]) -> None:
    """The authors' Net (and the fork's) run on seeded weights under PyTorch 1.0's grid, recorded by
    testkit.rrin_authors: our variant in float64 equals it to the recording's float32 rounding, and in float32
    within ten times the published code's own float32 error."""
    name = rrin_authors.case_name(height, width, t)
    expected = torch.from_numpy(recorded_outputs[name]).double()
    shapes = {key: tuple(value.shape) for key, value in RRIN().state_dict().items()}
    state = {key.replace("Flow_L.", f"{flow_name}.", 1): value
             for key, value in rrin_authors.seeded_state(shapes).items()}
    net = build_model(architecture, {"model": state})
    assert isinstance(net, RRINOfficial)
    img0, img1 = rrin_authors.seeded_frames(height, width)
    exact = net.double()(img0.double(), img1.double(), t, 1.0, False)
    assert (exact - expected).abs().max() < 1e-7
    single = net.float()(img0, img1, t, 1.0, False).double()
    assert (single - expected).abs().max() < 10 * RECORDED["cases"][name]["official_fp32_error"]
    # what the recording tells apart: the blend alone (the authors' early forward) and the exact grid (ours)
    assert (net.double().estimate(img0.double(), img1.double(), t).blend - expected).abs().max() > 1e-2
    ours = build_model("rrin", {"model": state}).double()
    assert (ours(img0.double(), img1.double(), t, 1.0, False) - expected).abs().max() > 1e-4


def _coordinate_image(height: int, width: int) -> Tensor:
    """Channel 0 holds x, channel 1 holds y, channel 2 is one: bilinear sampling returns the sample position."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")
    return torch.stack((xs, ys, torch.ones(height, width))).unsqueeze(0)


@pytest.mark.parametrize("flow_xy", [(0.0, 0.0), (2.5, -1.25), (-3.0, 4.0)])
def test_warp_grids(flow_xy: tuple[float, float]) -> None:
    height, width = 24, 40
    image = _coordinate_image(height, width)
    flow = torch.tensor(flow_xy, dtype=torch.float32).view(1, 2, 1, 1).expand(1, 2, height, width).contiguous()
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                            indexing="ij")
    for legacy, sx, sy in ((False, xs + flow_xy[0], ys + flow_xy[1]),
                           (True, (xs + flow_xy[0]) * (width - 1) / width, (ys + flow_xy[1]) * (height - 1) / height)):
        out = warp_zeros(image, flow, legacy).double()[0]
        inside = (sx >= 0) & (sx <= width - 1) & (sy >= 0) & (sy <= height - 1)
        assert inside.sum() > height * width / 2
        torch.testing.assert_close(out[0][inside], sx[inside], rtol=0, atol=1e-4)
        torch.testing.assert_close(out[1][inside], sy[inside], rtol=0, atol=1e-4)
        torch.testing.assert_close(out[2][inside], torch.ones_like(sx[inside]), rtol=0, atol=1e-5)
        # zero padding: a sample more than one pixel beyond the border sees only zeros (1e-3: float32 grid rounding)
        far = 1 + 1e-3
        outside = (sx <= -far) | (sx >= width - 1 + far) | (sy <= -far) | (sy >= height - 1 + far)
        if flow_xy != (0.0, 0.0):
            assert outside.any()
        assert torch.equal(out[:, outside], torch.zeros_like(out[:, outside]))
        # half a pixel past the border: the ones channel fades linearly (bilinear against zeros)
        fringe = (sx > width - 1) & (sx < width) & (sy >= 0) & (sy <= height - 1)
        torch.testing.assert_close(out[2][fringe], (width - sx[fringe]), rtol=0, atol=1e-4)


def test_legacy_grid_is_the_authors_formula() -> None:
    """The authors' warp: grid 2 (x / W - 0.5) with PyTorch 1.0's grid_sample (align_corners=True), zeros outside."""
    generator = torch.Generator().manual_seed(5)
    image = torch.rand(2, 3, 16, 24, generator=generator)
    flow = torch.randn(2, 2, 16, 24, generator=generator) * 3
    _, _, h, w = image.shape
    grid_x, grid_y = torch.meshgrid(torch.arange(w, dtype=torch.float32), torch.arange(h, dtype=torch.float32),
                                    indexing="xy")
    x = grid_x.unsqueeze(0) + flow[:, 0]
    y = grid_y.unsqueeze(0) + flow[:, 1]
    grid = torch.stack((2 * (x / w - 0.5), 2 * (y / h - 0.5)), dim=3)
    expected = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    torch.testing.assert_close(warp_zeros(image, flow, True), expected, rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------------------- flows


def _constant_flow_net(cls: type[RRIN], f01: tuple[float, float], f10: tuple[float, float]) -> RRIN:
    """A net whose Flow_L returns the constant flows F01, F10 and whose flow residue and weight logits are zero."""
    torch.manual_seed(7)
    net = cls().eval()
    with torch.no_grad():
        for unet in (net.Flow_L, net.refine_flow, net.Mask):
            unet.last.weight.zero_()
            assert unet.last.bias is not None
            unet.last.bias.zero_()
        assert net.Flow_L.last.bias is not None
        net.Flow_L.last.bias.copy_(torch.tensor([*f01, *f10]))
    return net


@torch.no_grad()
@pytest.mark.parametrize("t", [0.5, 0.25, 0.8])
def test_super_slomo_flow_combination(t: float) -> None:
    f01, f10 = (3.0, -1.5), (-2.0, 0.5)
    net = _constant_flow_net(RRIN, f01, f10)
    img0, img1 = _frames(11, 32, 64)
    out = net.estimate(img0, img1, t)
    expected_t0 = [-(1 - t) * t * a + t * t * b for a, b in zip(f01, f10, strict=True)]
    expected_t1 = [(1 - t) ** 2 * a - t * (1 - t) * b for a, b in zip(f01, f10, strict=True)]
    for c in range(2):
        torch.testing.assert_close(out.flow_t0[:, c], torch.full_like(out.flow_t0[:, c], expected_t0[c]))
        torch.testing.assert_close(out.flow_t1[:, c], torch.full_like(out.flow_t1[:, c], expected_t1[c]))


@torch.no_grad()
def test_per_sample_times() -> None:
    f01, f10 = (3.0, -1.5), (-2.0, 0.5)
    net = _constant_flow_net(RRIN, f01, f10)
    a0, a1 = _frames(12, 32, 32)
    img0, img1 = torch.cat((a0, a1, a0)), torch.cat((a1, a0, a0))
    times = torch.tensor([0.5, 0.25, 0.8]).view(3, 1, 1, 1)
    batched = net.estimate(img0, img1, times)
    for i, t in enumerate(times.flatten().tolist()):
        single = net.estimate(img0[i:i + 1], img1[i:i + 1], t)
        torch.testing.assert_close(batched.flow_t0[i:i + 1], single.flow_t0)
        torch.testing.assert_close(batched.output[i:i + 1], single.output, rtol=0, atol=1e-5)


def _shift(image: Tensor, dx: int, dy: int) -> Tensor:
    """out[y, x] = image[y + dy, x + dx], zeros where that is outside (an exact backward warp by an integer flow)."""
    out = torch.zeros_like(image)
    _, _, h, w = image.shape
    ys, yd = slice(max(dy, 0), h + min(dy, 0)), slice(max(-dy, 0), h + min(-dy, 0))
    xs, xd = slice(max(dx, 0), w + min(dx, 0)), slice(max(-dx, 0), w + min(-dx, 0))
    out[:, :, yd, xd] = image[:, :, ys, xs]
    return out


@torch.no_grad()
def test_blend_of_integer_flows_is_the_shifted_average() -> None:
    # at t = 0.5: flow_t0 = (F10 - F01) / 4 = (-2, 2), flow_t1 = -flow_t0; equal weights (sigmoid(0) = 0.5)
    net = _constant_flow_net(RRIN, (4.0, 0.0), (-4.0, 8.0))
    img0, img1 = _frames(13, 32, 64)
    out = net.estimate(img0, img1, 0.5)
    expected = 0.5 * _shift(img0, -2, 2) + 0.5 * _shift(img1, 2, -2)
    torch.testing.assert_close(out.blend, expected, rtol=0, atol=1e-5)
    # the authors' grid lands elsewhere: the same flows give a different blend
    legacy = _constant_flow_net(RRINOfficial, (4.0, 0.0), (-4.0, 8.0)).estimate(img0, img1, 0.5).blend
    assert (legacy - expected).abs().max() > 1e-3


# ------------------------------------------------------------------------------------------------- coarse to fine


class _SmallShiftNet(nn.Module):
    """A flow net that knows only small motion: per pair the one integer shift of at most `limit` pixels per axis
    that best maps each frame onto the other (channels F0->1, F1->0 as Flow_L's)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def _shift(self, a: Tensor, b: Tensor) -> Tensor:
        """Per sample the (dx, dy) for which a(x) is most like b(x + (dx, dy)), compared away from the borders."""
        m, (height, width) = self.limit, a.shape[2:]
        shifts = [(dx, dy) for dy in range(-m, m + 1) for dx in range(-m, m + 1)]
        errors = torch.stack([(a[:, :, m:height - m, m:width - m]
                               - b[:, :, m + dy:height - m + dy, m + dx:width - m + dx]).abs().mean((1, 2, 3))
                              for dx, dy in shifts], 1)
        return torch.tensor(shifts, dtype=a.dtype)[errors.argmin(1)]

    def forward(self, pair: Tensor) -> Tensor:
        a, b = pair[:, :3], pair[:, 3:]
        height, width = a.shape[2:]
        flows = torch.cat((self._shift(a, b), self._shift(b, a)), 1)
        return flows.view(-1, 4, 1, 1).expand(-1, 4, height, width)


@pytest.mark.parametrize("levels", [1, 2, 3, 4])
def test_pyramid_alignment(levels: int) -> None:
    net = RRIN()
    net.flow_levels = levels
    assert net.alignment(1.0) == pyramid_alignment(levels) == {1: 32, 2: 32, 3: 64, 4: 128}[levels]


@torch.no_grad()
def test_coarse_to_fine_finds_motion_the_single_pass_cannot() -> None:
    """Frame b is frame a moved by (12, -8) px; a net that sees at most 3 px finds it over three levels, each finer
    level adding the residual it sees between a frame and the other one warped by the coarser flows."""
    texture = F.interpolate(torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(8)), size=(192, 192),
                            mode="bicubic", align_corners=False)
    shift_x, shift_y = 12, -8
    img0 = texture[:, :, 32:160, 32:160]
    img1 = texture[:, :, 32 - shift_y:160 - shift_y, 32 - shift_x:160 - shift_x]  # img1(x) = img0(x - shift)
    net = _SmallShiftNet(limit=3)
    # one level: clamped; two: (6, -4) at half size clamped to (3, -3), then (6, -2) more clamped to (3, -2)
    for levels, expected in ((1, (3, -3)), (2, (9, -8)), (3, (shift_x, shift_y))):
        estimates = coarse_to_fine(net, img0, img1, levels)
        assert len(estimates) == levels
        for level, estimate in enumerate(estimates):  # coarsest first, in its own pixels
            assert estimate.shape[2:] == (128 >> (levels - 1 - level),) * 2
        flow = estimates[-1][0, :, 40:88, 40:88]  # inside: the borders see the replicated edge
        for channel, value in enumerate((*expected, -expected[0], -expected[1])):
            torch.testing.assert_close(flow[channel], torch.full_like(flow[channel], float(value)))
    # the same net in a whole RRIN: levels=1 is the authors' single pass through Flow_L
    rrin = RRIN().eval()
    pair = torch.cat((img0, img1), 1)
    assert torch.equal(coarse_to_fine(rrin.Flow_L, img0, img1, 1)[-1], rrin.Flow_L(pair))
