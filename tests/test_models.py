"""vsrife.models against the published RIFE inference code (testkit/reference.py), on real frames."""

from __future__ import annotations

import copy
import functools
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from conftest import ROOT, decode_rgb
from testkit import reference
from vsrife import kernels
from vsrife.errors import VfiError
from vsrife.models import ARCHITECTURES, WeightsMismatchError, build_model, layers, skeleton

VERSIONS = ("4.0", "3.1", "3.5", "3.8")
TOLERANCE = 1e-4  # fp32 on the CPU; the published and our graphs differ only in operation order


@functools.cache
def _state_dicts(version: str) -> dict[str, dict[str, Tensor]]:
    return reference.wheel_state_dicts(version)


@functools.cache
def _model(version: str) -> Any:  # Any: the tests reach into architecture-specific submodules
    return build_model("rife-" + version, _state_dicts(version))


@functools.cache
def _reference(version: str, ensemble: bool) -> Callable[[Tensor, Tensor, float, float], Tensor]:
    return reference.load_reference(version, ensemble=ensemble)


@pytest.fixture(scope="module")
def frames(bikes_path: Path) -> Tensor:
    """Frames 0-2 of bikes.mp4 as 3 x 3 x 272 x 640 float32 RGB in [0, 1] (size given: no bestsource probe)."""
    rgb = decode_rgb(bikes_path, 3, 640, 272)
    return torch.from_numpy(rgb).permute(0, 3, 1, 2).contiguous()


def _crop(frames: Tensor, index: int, h: int, w: int) -> Tensor:
    """Frame `index`, cropped near the centre."""
    top, left = (frames.shape[2] - h) // 2, (frames.shape[3] - w) // 2
    return frames[index:index + 1, :, top:top + h, left:left + w]


def _pair(frames: Tensor, h: int, w: int) -> tuple[Tensor, Tensor]:
    return _crop(frames, 0, h, w), _crop(frames, 2, h, w)


def _psnr(a: Tensor, b: Tensor) -> float:
    return 10 * torch.log10(1 / ((a.float() - b.float()) ** 2).mean()).item()


@pytest.fixture(autouse=True)
def _no_grad() -> Iterator[None]:
    with torch.no_grad():
        yield


def _assert_parity(version: str, img0: Tensor, img1: Tensor, t: float, scale: float, ensemble: bool) -> None:
    ours = _model(version)(img0, img1, t, scale, ensemble)
    theirs = _reference(version, ensemble)(img0, img1, t, scale)
    assert ours.shape == img0.shape
    diff = (ours - theirs).abs().max().item()
    assert diff < TOLERANCE, f"rife-{version} t={t} scale={scale} ensemble={ensemble}: max abs diff {diff}"


# ---------------------------------------------------------------------------------------------- parity


@pytest.mark.parametrize(("version", "t", "scale", "ensemble"), [
    ("4.0", 0.5, 1.0, False), ("4.0", 0.25, 1.0, False), ("4.0", 0.5, 0.5, True), ("4.0", 0.75, 2.0, False),
    ("3.1", 0.5, 1.0, False), ("3.1", 0.5, 0.5, False), ("3.1", 0.5, 2.0, False),
    ("3.5", 0.5, 1.0, False),
    ("3.8", 0.5, 1.0, False), ("3.8", 0.5, 1.0, True), ("3.8", 0.5, 0.5, False),
])
def test_matches_published_code(frames: Tensor, version: str, t: float, scale: float, ensemble: bool) -> None:
    img0, img1 = _pair(frames, 128, 256)
    _assert_parity(version, img0, img1, t, scale, ensemble)


@pytest.mark.parametrize("ensemble", [False, True])
def test_large_motion_retry_of_4_0_matches(frames: Tensor, ensemble: bool) -> None:
    img0, img1 = frames[0:1, :, 40:168, 100:292], frames[0:1, :, 40:168, 164:356]  # 64 px pan
    model = _model("4.0")
    calls: list[int] = []
    handle = model.block0.conv0.register_forward_hook(lambda *_: calls.append(1))  # one call per pass of block 0
    try:
        _assert_parity("4.0", img0, img1, 0.5, 1.0, ensemble)
    finally:
        handle.remove()
    assert len(calls) == (3 if ensemble else 2), "the large-motion retry was not exercised"


def test_adaptive_scale_of_3_8_matches(frames: Tensor) -> None:
    img0 = frames[0:1, :, 8:264, 0:384]
    img1 = torch.roll(img0, 96, 3)
    model = _model("3.8")
    sizes: list[int] = []
    handle = model.block0.conv0.register_forward_hook(lambda _m, _i, out: sizes.append(out.shape[2]))
    try:
        _assert_parity("3.8", img0, img1, 0.5, 1.0, False)
    finally:
        handle.remove()
    assert sizes == [8, 8], "the adaptive scale (doubled flow scales) was not exercised"


def test_3_5_downscaled_flow_stays_close_to_full_resolution(frames: Tensor) -> None:
    # the published 3.5 warps the resized frames when scale != 1 (26.6 dB frame-drop PSNR); we do not
    img0, img1 = _pair(frames, 128, 256)
    model = _model("3.5")
    full = model(img0, img1, 0.5, 1.0, False)
    half = model(img0, img1, 0.5, 0.5, False)
    assert _psnr(full, half) > 30


def test_reference_import_leaves_our_package_alone() -> None:
    _reference("3.1", False)
    import vsrife

    assert Path(vsrife.__file__).resolve().parent == ROOT / "vsrife"
    assert "vsrife.warplayer" not in sys.modules and not hasattr(vsrife, "warplayer")
    assert "vsrife_ref_1_0_0.warplayer" in sys.modules


# ---------------------------------------------------------------------------------------------- loading


def test_architecture_properties() -> None:
    assert {"rife-4.0", "rife-3.1", "rife-3.5", "rife-3.8", "rrin", "rrin-official", "rrin-fork"} <= set(ARCHITECTURES)
    assert skeleton("rife-3.1").weight_roles == ("flownet", "contextnet", "unet")
    for name in ("rife-4.0", "rife-3.5", "rife-3.8", "rife-4.25"):
        assert skeleton(name).weight_roles == ("flownet",)
    assert not skeleton("rife-4.0").midpoint_only
    assert all(skeleton(f"rife-{v}").midpoint_only for v in ("3.1", "3.5", "3.8"))
    assert not skeleton("rife-3.1").supports_ensemble


def test_unknown_architecture_names_the_choices() -> None:
    with pytest.raises(ValueError, match=re.escape("rife-4.0")):
        build_model("rife-9.9", {})


def test_wrong_weights_are_rejected_clearly() -> None:
    assert issubclass(WeightsMismatchError, VfiError)  # a message for the user, like every model_path error
    with pytest.raises(WeightsMismatchError, match=r"missing keys: .*unexpected keys: "):
        build_model("rife-3.8", _state_dicts("3.5"))  # same block names, other heads
    with pytest.raises(WeightsMismatchError, match="missing keys"):
        build_model("rife-4.0", {"flownet": _state_dicts("3.1")["flownet"]})
    with pytest.raises(WeightsMismatchError, match="roles"):
        build_model("rife-3.1", {"flownet": _state_dicts("3.1")["flownet"]})
    extra = dict(_state_dicts("4.0")["flownet"], **{"module.block4.weight": torch.zeros(1)})
    with pytest.raises(WeightsMismatchError, match=re.escape("unexpected keys: block4.weight")):
        build_model("rife-4.0", {"flownet": extra})
    bad_shape = dict(_state_dicts("4.0")["flownet"], **{"module.block0.lastconv.bias": torch.zeros(4)})
    with pytest.raises(WeightsMismatchError, match=re.escape("shape mismatch: block0.lastconv.bias")):
        build_model("rife-4.0", {"flownet": bad_shape})


def test_roles_map_onto_submodules_and_prefix_is_optional() -> None:
    states = {role: {k.removeprefix("module."): v for k, v in sd.items()} for role, sd in _state_dicts("3.1").items()}
    model: Any = build_model("rife-3.1", states)
    assert torch.equal(model.unet.conv.bias, states["unet"]["conv.bias"])
    assert torch.equal(model.contextnet.conv0.conv1[0].weight, states["contextnet"]["conv0.conv1.0.weight"])
    assert not model.training and not any(p.requires_grad for p in model.parameters())


# ---------------------------------------------------------------------------------------------- sizes


@pytest.mark.parametrize(("name", "expected"), [
    ("rife-4.0", {0.25: 256, 0.5: 128, 1.0: 64, 2.0: 32, 4.0: 16}),
    ("rife-3.1", {0.25: 64, 0.5: 32, 1.0: 32, 2.0: 32, 4.0: 32}),
    ("rife-3.5", {0.25: 64, 0.5: 32, 1.0: 16, 2.0: 8, 4.0: 4}),
    ("rife-3.8", {0.25: 128, 0.5: 64, 1.0: 32, 2.0: 16, 4.0: 8}),
])
def test_alignment(name: str, expected: dict[float, int]) -> None:
    model = skeleton(name)
    assert {scale: model.alignment(scale) for scale in expected} == expected
    with pytest.raises(ValueError, match="power of two"):
        model.alignment(0.75)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("height", "width", "scale"), [(272, 640, 1.0), (60, 100, 1.0), (60, 100, 0.5)])
def test_awkward_sizes_pad_and_crop(frames: Tensor, version: str, height: int, width: int, scale: float) -> None:
    model = _model(version)
    img0, img1 = _pair(frames, height, width)
    align = model.alignment(scale)
    pad = (0, -width % align, 0, -height % align)
    out = model(F.pad(img0, pad, mode="replicate"), F.pad(img1, pad, mode="replicate"), 0.5, scale, False)
    out = out[:, :, :height, :width]
    assert out.shape == img0.shape and torch.isfinite(out).all()
    middle = _crop(frames, 1, height, width)  # the real frame in between: motion compensation must beat a plain average
    assert _psnr(out, middle) > _psnr((img0 + img1) / 2, middle) + 3


def test_midpoint_only_models_reject_other_timesteps() -> None:
    img0, img1 = torch.rand(2, 1, 3, 32, 32)
    for name, build in ARCHITECTURES.items():
        if skeleton(name).midpoint_only:
            with pytest.raises(ValueError, match="timestep"):
                build()(img0, img1, 0.25, 1.0, False)


# ---------------------------------------------------------------------------------------------- dtypes, warp


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision(frames: Tensor, dtype: torch.dtype) -> None:
    img0, img1 = _pair(frames, 64, 128)
    full = _model("4.0")(img0, img1, 0.5, 1.0, True)
    model = build_model("rife-4.0", _state_dicts("4.0")).to(dtype)
    out = model(img0.to(dtype), img1.to(dtype), 0.5, 1.0, True)
    # only the convolutions run in dtype: the flow, the warps and the blend stay float32
    assert out.dtype == torch.float32 and out.shape == img0.shape
    assert _psnr(out, full) > 45


def test_warp_moves_pixels_by_the_flow() -> None:
    image = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).reshape(2, 3, 5, 7)
    flow = torch.zeros(2, 2, 5, 7)
    assert torch.allclose(layers.warp(image, flow), image)
    flow[:, 0] = 2.0  # sample two pixels to the right; the border repeats the last column
    expected = torch.cat((image[..., 2:], image[..., -1:].expand(-1, -1, -1, 2)), 3)
    assert torch.allclose(layers.warp(image, flow), expected, atol=1e-4)
    half = layers.warp(image.to(torch.bfloat16), flow.to(torch.bfloat16))
    assert half.dtype == torch.bfloat16


@pytest.mark.parametrize("size", [(5, 10), (20, 40), (7, 3)])
@pytest.mark.parametrize("threads", [1, 2])
def test_upsample2x_is_the_transposed_convolution(size: tuple[int, int], threads: int) -> None:
    """Against the transposed convolution in float64, within the a-priori bound of float32 rounding for a sum of n
    products, n * 2**-24 * sum |products|: it holds for any summation order, so on every CPU and thread count
    (bits may differ between thread counts: oneDNN does not promise otherwise, and on Intel AMX CPUs they do)."""
    torch.manual_seed(0)
    layer = layers.Upsample2x(192, 5).eval()
    x = torch.rand(1, 192, *size)
    assert layer.bias is not None
    weight, bias = layer.weight.double(), layer.bias.double()
    exact = F.conv_transpose2d(x.double(), weight, bias, stride=2, padding=1)
    magnitude = F.conv_transpose2d(x.double().abs(), weight.abs(), bias.abs(), stride=2, padding=1)
    terms = 192 * 4 + 1  # each output sums 2 x 2 taps of every input channel, and the bias
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        with torch.inference_mode():
            out = layer(x)
    finally:
        torch.set_num_threads(saved)
    assert out.shape == exact.shape
    excess = (out.double() - exact).abs() - terms * 2.0**-24 * magnitude
    assert excess.max().item() <= 0.0


@pytest.mark.parametrize("version", ["4.0", "4.25"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_native_glue_matches_the_reference_glue(frames: Tensor, version: str, dtype: torch.dtype) -> None:
    """The whole net with the fused native kernels against the plain-PyTorch glue that CUDA runs."""
    img0, img1 = _pair(frames, 128, 192)  # multiples of 64: 4.25's coarsest level
    if version == "4.0":
        model = copy.deepcopy(_model(version))  # a copy: _model's nets are shared between tests
    else:  # no published file here: initialised weights exercise the encoder and the carried channels alike
        torch.manual_seed(0)
        model = ARCHITECTURES["rife-" + version]().eval()
    model = model.to(dtype)
    model.use_channels_last()
    with torch.inference_mode():
        native = model(img0, img1, 0.25, 1.0, False)
        with kernels.reference_only():
            reference = model(img0, img1, 0.25, 1.0, False)
    # fp32: summation order only; bf16: a convolution input rounded the other way now and then
    assert _psnr(native, reference) > (80 if dtype == torch.float32 else 50)


@pytest.mark.parametrize(("stride", "groups", "slope", "residual"),
                         [(1, 1, None, False), (2, 1, 0.2, False), (1, 2, 0.2, False), (1, 1, 0.2, True)])
def test_fused_convolution_is_the_plain_one(stride: int, groups: int, slope: float | None, residual: bool) -> None:
    """oneDNN's fused convolution with prepacked weights (the CPU path of every 4.x convolution) against the plain
    PyTorch ops in float64, twice (the second call reuses the packed weight), and that the CPU really takes it."""
    torch.manual_seed(0)
    x = torch.randn(1, 32, 20, 24).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(32, 32 // groups, 3, 3) * 0.1
    bias = torch.randn(32)
    extra = torch.randn(1, 32, 20 // stride, 24 // stride) if residual else None
    exact = F.conv2d(x.double(), weight.double(), bias.double(), stride, 1, 1, groups)
    exact = exact if extra is None else exact + extra.double()
    exact = exact if slope is None else F.leaky_relu(exact, slope)
    assert layers.fused_conv_applies(x, weight)
    with torch.inference_mode(), torch.profiler.profile() as profile:
        outs = [layers.conv3x3(x, weight, bias, stride, groups, slope, extra) for _ in range(2)]
    assert any(e.key == "mkldnn::_convolution_pointwise" for e in profile.key_averages())
    for out in outs:
        assert out.dtype == torch.float32 and out.shape == exact.shape
        assert (out.double() - exact).abs().max().item() < 1e-4
