"""Building blocks shared by the RIFE architectures."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from fractions import Fraction
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.weak import WeakTensorKeyDictionary

from ..kernels import resize, warp

__all__ = ["ConvLeaky", "ConvPReLU", "InterpolationNet", "Upsample2x", "check_scale", "conv3x3", "conv_leaky",
           "conv_prelu", "deconv_prelu", "flow_alignment", "fused_conv_applies", "parameters_key", "resize",
           "resize_flow", "smallest_common_multiple", "swap_flow", "warp"]

# oneDNN's convolution with fused pointwise steps (what inductor's CPU freezing uses); absent from some builds
_CONV_POINTWISE = getattr(getattr(torch.ops, "mkldnn", None), "_convolution_pointwise", None) \
    if torch.backends.mkldnn.is_available() else None


class InterpolationNet(nn.Module):
    """What the engine relies on; every architecture subclasses this."""

    midpoint_only: ClassVar[bool] = False
    supports_ensemble: bool = False  # an instance may set it (a family where only some shapes ensemble)
    # role name of each weight file -> key prefix of that role's tensors in this module's state dict
    weight_roles: ClassVar[tuple[str, ...]] = ("flownet",)
    role_prefixes: ClassVar[dict[str, str]] = {"flownet": ""}
    # key prefixes (after "module." is stripped) that the files carry but inference never uses
    unused_prefixes: ClassVar[tuple[str, ...]] = ()
    # key prefixes of other published layouts -> ours (after "module." is stripped)
    key_aliases: ClassVar[dict[str, str]] = {}
    # Peak memory of one forward pass per padded input pixel in fp32 (the engine's automatic tile size uses it);
    # measured by benchmarks/memory_rrin.py (docs/BENCHMARKS.md). Unmeasured nets keep this cautious default.
    memory_bytes_per_pixel: float = 4096.0
    # channels of the features encode_frame returns per pixel of a frame (0: none)
    feature_channels: int = 0
    # frames in and out are float32 whatever the net's dtype: only the convolutions run in it (RIFE 4.x)
    float32_frames: ClassVar[bool] = False
    # convolutions on channels-last tensors: see use_channels_last
    channels_last: bool = False

    def alignment(self, scale: float) -> int:
        raise NotImplementedError

    def use_flow_levels(self, levels: int, width: int, height: int) -> None:
        """Estimate the flows coarse to fine over `levels` levels (0: the net's choice for frames of width x
        height); a no-op for nets without such a pyramid."""

    def use_channels_last(self) -> None:
        """Run the convolutions on channels-last tensors where this net supports it (the engine asks on the CPU,
        where oneDNN is faster that way); a no-op for nets that do not."""

    def encode_frame(self, image: Tensor) -> Tensor | None:
        """Features of one padded frame that `forward` takes as `features` (None: this net computes none).

        They depend on that frame alone, so a caller may compute them once per frame and pass them to every pair
        the frame is part of.
        """
        return None

    def forward(self, img0: Tensor, img1: Tensor, timestep: float, scale: float, ensemble: bool) -> Tensor:
        """The frame at `timestep`; nets whose encode_frame returns features also take them as `features`."""
        raise NotImplementedError

    def _check_midpoint(self, timestep: float) -> None:
        if timestep != 0.5:
            raise ValueError(f"{type(self).__name__} only interpolates the midpoint (timestep 0.5), got {timestep}")


def parameters_key(*parameters: Tensor | None) -> tuple[tuple[object, ...], ...]:
    """What identifies the current values of parameters: tensors derived from them are rebuilt when it changes
    (loaded, moved, cast)."""
    return tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in parameters if p is not None)


@functools.cache
def _fused_dtypes() -> tuple[torch.dtype, ...]:
    """What oneDNN's fused convolution takes here: bf16 only where the CPU has AVX512-BW/VL/DQ or AVX-NE-CONVERT."""
    bf16 = _CONV_POINTWISE is not None and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return (torch.float32, torch.bfloat16) if bf16 else (torch.float32,)


def fused_conv_applies(x: Tensor, weight: Tensor) -> bool:
    """Whether oneDNN's fused convolution applies: CPU, a dtype it takes here, no gradient wanted, not traced for
    export (ONNX has no such operator) nor compiled (torch.compile fuses by itself)."""
    return (_CONV_POINTWISE is not None and not torch._C._get_tracing_state() and not torch.compiler.is_compiling()
            and x.device.type == "cpu" and x.dtype in _fused_dtypes() and weight.dtype == x.dtype
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)))


# weight -> {(its storage, dtype, version, input shape, stride, groups): the weight in oneDNN's layout for it}
_PACKED: WeakTensorKeyDictionary = WeakTensorKeyDictionary()
_PACKED_SHAPES = 4  # input shapes kept per weight (frame sizes, tiles); more start the weight's cache afresh


def _packed_weight(weight: Tensor, x: Tensor, stride: int, groups: int) -> Tensor:
    """The weight reordered once into oneDNN's blocked layout for inputs shaped like x: otherwise oneDNN reorders it
    on every call, which costs more than the convolution itself on the coarse levels."""
    # storage and version: a parameter's .data may be replaced (module.to) or written in place (load_state_dict)
    version = 0 if weight.is_inference() else weight._version
    key = (weight.data_ptr(), weight.dtype, version, tuple(x.shape), stride, groups)
    per_weight = _PACKED.get(weight)
    if per_weight is None:
        per_weight = _PACKED[weight] = {}
    packed = per_weight.get(key)
    if packed is None:
        if len(per_weight) >= _PACKED_SHAPES:
            per_weight.clear()
        packed = torch.ops.mkldnn._reorder_convolution_weight(weight, [1, 1], [stride, stride], [1, 1], groups,
                                                              list(x.shape))
        per_weight[key] = packed
    return packed


def conv3x3(x: Tensor, weight: Tensor, bias: Tensor | None, stride: int = 1, groups: int = 1,
            slope: float | None = None, residual: Tensor | None = None) -> Tensor:
    """conv3x3(x, padding 1), plus residual when given, then leaky_relu(slope) when slope is given: one oneDNN pass
    with prepacked weights on the CPU where it applies (the activation after a residual in place: oneDNN fuses only
    ReLU there), else the plain PyTorch ops (other devices, float64, autograd)."""
    if not fused_conv_applies(x, weight):
        y = F.conv2d(x, weight, bias, stride, 1, 1, groups)
        y = y if residual is None else y + residual
        return y if slope is None else F.leaky_relu(y, slope)
    assert _CONV_POINTWISE is not None
    packed = _packed_weight(weight, x, stride, groups)
    geometry = ([1, 1], [stride, stride], [1, 1], groups)
    if residual is None:
        out: Tensor = _CONV_POINTWISE(x, packed, bias, *geometry, "none" if slope is None else "leaky_relu",
                                      [] if slope is None else [slope], "")
        return out
    out = _CONV_POINTWISE.binary(x, residual, packed, bias, *geometry, "add", None, None, [], None)
    return out if slope is None else F.leaky_relu_(out, slope)


def _conv(sequential: nn.Sequential) -> nn.Conv2d:
    conv = sequential[0]
    assert isinstance(conv, nn.Conv2d)
    return conv


class ConvPReLU(nn.Sequential):
    """A 3x3 convolution followed by a per-channel PReLU (keys: .0 conv, .1 PReLU)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__(nn.Conv2d(in_ch, out_ch, 3, stride, 1), nn.PReLU(out_ch))

    def forward(self, x: Tensor) -> Tensor:
        conv, prelu = _conv(self), self[1]
        assert isinstance(prelu, nn.PReLU)
        return F.prelu(conv3x3(x, conv.weight, conv.bias, conv.stride[0], conv.groups), prelu.weight)


class ConvLeaky(nn.Sequential):
    """A 3x3 convolution followed by LeakyReLU (keys: .0 conv; the activation has none), fused on the CPU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, slope: float = 0.2) -> None:
        super().__init__(nn.Conv2d(in_ch, out_ch, 3, stride, 1), nn.LeakyReLU(slope))
        self.slope = slope

    def forward(self, x: Tensor) -> Tensor:
        conv = _conv(self)
        return conv3x3(x, conv.weight, conv.bias, conv.stride[0], conv.groups, self.slope)


def conv_prelu(in_ch: int, out_ch: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution followed by a per-channel PReLU (keys: .0 conv, .1 PReLU), as PyTorch computes it (the 3.x
    nets: their tests bound them against the published code in float32); ConvPReLU is the same on oneDNN's path."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, stride, 1), nn.PReLU(out_ch))


def conv_leaky(in_ch: int, out_ch: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution followed by LeakyReLU(0.2) (keys: .0 conv; the activation has none)."""
    return ConvLeaky(in_ch, out_ch, stride, 0.2)


# Kernel taps of a 4x4 stride-2 transposed convolution that reach output phase p (row or column 2i + p), as
# (tap u of a 3x3 window centred on input i, index k of the 4x4 kernel): input i + u - 1 meets kernel index k.
_UPSAMPLE_TAPS = {0: ((0, 3), (1, 1)), 1: ((1, 2), (2, 0))}


class Upsample2x(nn.ConvTranspose2d):
    """ConvTranspose2d(in_ch, out_ch, 4, stride 2, padding 1), computed as a 3x3 convolution and a pixel shuffle.

    Same parameters and state dict as the transposed convolution, in the convolution that oneDNN runs fastest (the
    native block_output reads its output before the shuffle, in place). Neither promises the same bits for another
    thread count: PyTorch's transposed convolution differs between 1 and 2 threads on an AMD EPYC, oneDNN's 3x3
    convolution on an Intel Xeon with AMX (tests/test_models.py bounds both against float64).
    """

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(in_ch, out_ch, 4, 2, 1)
        self._conv: tuple[tuple[object, ...], Tensor, Tensor | None] | None = None

    def _as_conv3x3(self) -> tuple[Tensor, Tensor | None]:
        """Weight (4 * out_ch, in_ch, 3, 3) and bias, channel 4o + 2a + b for output phase (a, b); rebuilt only when
        the parameters change (loaded, moved, cast)."""
        key = parameters_key(self.weight, self.bias)
        if self._conv is None or self._conv[0] != key:
            in_ch, out_ch = self.weight.shape[:2]
            conv = self.weight.new_zeros(out_ch, 2, 2, in_ch, 3, 3)
            for a, rows in _UPSAMPLE_TAPS.items():
                for b, cols in _UPSAMPLE_TAPS.items():
                    for u, kh in rows:
                        for v, kw in cols:
                            conv[:, a, b, :, u, v] = self.weight[:, :, kh, kw].t()
            bias = None if self.bias is None else self.bias.repeat_interleave(4)
            self._conv = (key, conv.reshape(out_ch * 4, in_ch, 3, 3), bias)
        return self._conv[1], self._conv[2]

    def unshuffled(self, x: Tensor) -> Tensor:
        """The output before its pixel shuffle: 4 * out_ch channels at the size of x (channel 4o + 2a + b)."""
        weight, bias = self._as_conv3x3()
        return conv3x3(x, weight, bias)

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        return F.pixel_shuffle(self.unshuffled(x), 2)


def deconv_prelu(in_ch: int, out_ch: int) -> nn.Sequential:
    """4x4 stride-2 transposed convolution (exact 2x upsampling) followed by PReLU."""
    return nn.Sequential(Upsample2x(in_ch, out_ch), nn.PReLU(out_ch))


def resize_flow(flow: Tensor, factor: float) -> Tensor:
    """Resize a flow field and rescale its vectors to the new pixel grid."""
    if factor == 1:
        return flow
    return resize(flow, factor) * factor


def swap_flow(flow: Tensor) -> Tensor:
    """Exchange the two 2-channel halves of a bidirectional flow (for the swapped-pair pass)."""
    return torch.cat((flow[:, 2:4], flow[:, :2]), 1)


def check_scale(scale: float) -> None:
    """Only powers of two keep every internal resize exact (sizes round-trip without rounding)."""
    if not (scale > 0 and math.isfinite(scale) and math.frexp(scale)[0] == 0.5):
        raise ValueError(f"scale must be a power of two such as 0.25, 0.5, 1.0, 2.0 or 4.0, got {scale}")


def smallest_common_multiple(divisors: Iterable[float]) -> int:
    """Smallest positive integer m such that m / d is an integer for every (positive, dyadic) d."""
    m = 1
    for d in divisors:
        m = math.lcm(m, Fraction(d).numerator)
    return m


def flow_alignment(flow_scales: Iterable[float]) -> int:
    """Size multiple needed by IFBlocks run at the given downsampling factors.

    Each block resizes by 1/s and then applies two stride-2 convolutions, so H/s must be a multiple of 4.
    """
    return smallest_common_multiple(4 * s for s in flow_scales)
