"""RIFE 4.5 to 4.26: residual convolution blocks, a PixelShuffle head and, from 4.7, a per-frame feature encoder.

Every version is one `ResidualShape` (widths, flow scales, encoder, ...) built on the 4.x loop of rife_v4_0.py;
the key names and shapes are those of the published modules (tests/test_rife4_parity.py checks every version).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import Upsample2x, conv3x3, conv_leaky, fused_conv_applies, parameters_key, resize, resize_flow
from .rife_v4_0 import RIFE4, BlockOutput, Head

_LEAKY_SLOPE = 0.2


class ResidualConv(nn.Module):
    """LeakyReLU(conv(x) * beta + x): a 3x3 convolution with a learned per-channel residual gain."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1, groups=groups)
        self.beta = nn.Parameter(torch.ones((1, channels, 1, 1)))
        self._fold: tuple[tuple[object, ...], Tensor, Tensor | None] | None = None

    def _folded(self, dtype: torch.dtype) -> tuple[Tensor, Tensor | None]:
        """Weight and bias of one convolution computing conv(x) * beta, plus x in float32 (an identity tap: one
        fused oneDNN pass with the activation); in bfloat16 the identity would round beta * w to 8 bits, so x is
        added after the convolution. Rebuilt only when the parameters change."""
        key = parameters_key(self.conv.weight, self.conv.bias, self.beta)
        if self._fold is None or self._fold[0] != key:
            gain = self.beta.detach().reshape(-1)
            weight = self.conv.weight.detach() * gain.view(-1, 1, 1, 1)
            if dtype == torch.float32:
                per_group = weight.shape[1]
                channels = torch.arange(weight.shape[0], device=weight.device)
                weight[channels, channels % per_group, 1, 1] += 1.0
            bias = None if self.conv.bias is None else self.conv.bias.detach() * gain
            self._fold = (key, weight, bias)
        return self._fold[1], self._fold[2]

    def forward(self, x: Tensor) -> Tensor:
        if not fused_conv_applies(x, self.conv.weight):  # as published (other devices, float64, autograd)
            return F.leaky_relu(self.conv(x) * self.beta + x, _LEAKY_SLOPE)
        weight, bias = self._folded(x.dtype)
        residual = None if x.dtype == torch.float32 else x
        return conv3x3(x, weight, bias, 1, self.conv.groups, _LEAKY_SLOPE, residual)


class ResidualFlowBlock(nn.Module):
    """Flow residual, mask logits and `out_channels - 5` further channels at full size from a 1/scale pass."""

    head_scale: ClassVar[float] = 1.0  # the head comes out at 1/scale of the full size

    def __init__(self, in_ch: int, width: int, out_channels: int, groups: int) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(conv_leaky(in_ch, width // 2, 2), conv_leaky(width // 2, width, 2))
        self.convblock = nn.Sequential(*(ResidualConv(width, groups) for _ in range(8)))
        # 4x: the transposed conv and the shuffle each double the size, undoing conv0's two strides
        self.lastconv = nn.Sequential(Upsample2x(width, 4 * out_channels), nn.PixelShuffle(2))

    def head(self, x: Tensor) -> Head:
        """Flow, mask and further channels at the size of x (x: the input already resized by 1/scale), as a
        tensor and the pixel shuffles by 2 still to apply to it (the glue reads them in place)."""
        upsample = cast(Upsample2x, self.lastconv[0])
        return upsample.unshuffled(self.convblock(self.conv0(x))), 2

    def forward(self, x: Tensor, flow: Tensor | None, scale: float) -> BlockOutput:
        """The published interface (full-size input and output), for graph export; RIFE4 uses head()."""
        x = resize(x, 1.0 / scale)
        if flow is not None:
            x = torch.cat((x, resize_flow(flow, 1.0 / scale)), 1)
        head, shuffles = self.head(x)
        for _ in range(shuffles):
            head = F.pixel_shuffle(head, 2)
        out = resize(head, scale)
        return out[:, :4] * scale, out[:, 4:5], out[:, 5:]


@dataclass(frozen=True)
class EncoderShape:
    """The per-frame feature encoder ("Head"): a stride-2 conv, `hidden` 3x3 convs, a 2x transposed conv."""

    width: int     # channels inside
    channels: int  # feature channels out, per frame
    hidden: int    # 3x3 convolutions between the first and the last layer (0 in 4.7-4.9, 2 from 4.10)
    named: bool    # 4.13+: layers named cnn0..cnn3, the input clamped to [0, 1]; before: an nn.Sequential


class Encoder(nn.Module):
    """Per-frame features at full resolution; LeakyReLU(0.2) between layers when there are hidden convolutions."""

    def __init__(self, shape: EncoderShape) -> None:
        super().__init__()
        w = shape.width
        layers = [nn.Conv2d(3, w, 3, 2, 1), *(nn.Conv2d(w, w, 3, 1, 1) for _ in range(shape.hidden)),
                  Upsample2x(w, shape.channels)]
        activated = shape.hidden > 0
        # published key names: cnn0..cnn3, or the nn.Sequential indices, where each activation takes an index
        names = [f"cnn{i}" if shape.named else str(i * (2 if activated else 1)) for i in range(len(layers))]
        for name, layer in zip(names, layers, strict=True):
            self.add_module(name, layer)
        self.layers = layers
        self.activated = activated
        self.clamps = shape.named

    def forward(self, x: Tensor) -> Tensor:
        if self.clamps:
            x = x.clamp(0.0, 1.0)
        for layer in self.layers[:-1]:
            assert isinstance(layer, nn.Conv2d)
            if self.activated:
                x = conv3x3(x, layer.weight, layer.bias, layer.stride[0], layer.groups, _LEAKY_SLOPE)
            else:
                x = layer(x)
        out: Tensor = self.layers[-1](x)
        return out


@dataclass(frozen=True)
class ResidualShape:
    """What differs between the versions of this family."""

    widths: tuple[int, ...]                        # channels of each block, coarse to fine
    encoder: EncoderShape | None                   # None: the blocks see the frames only (4.5, 4.6)
    out_channels: int = 6                          # per block: flow 4, mask 1, then unused or carried channels
    carries_features: bool = False                 # channels after the mask feed the next block (4.21+)
    mask_residual: bool = False                    # blocks add to the mask (4.5, 4.6) instead of replacing it
    flow_scales: tuple[float, ...] = (8.0, 4.0, 2.0, 1.0)
    groups: int = 1                                # grouped convolutions in the residual blocks (4.14.lite)


_STANDARD = (192, 128, 96, 64)
_LITE = (128, 96, 64, 48)
_FIVE_SCALES = (16.0, 8.0, 4.0, 2.0, 1.0)
_SEQUENTIAL_1 = EncoderShape(width=16, channels=4, hidden=0, named=False)   # 4.7-4.9
_SEQUENTIAL_8 = EncoderShape(width=32, channels=8, hidden=2, named=False)   # 4.10-4.12
_SEQUENTIAL_4 = EncoderShape(width=32, channels=4, hidden=2, named=False)   # 4.12.lite, 4.13.lite
_HEAD_8 = EncoderShape(width=32, channels=8, hidden=2, named=True)          # 4.13-4.24
_HEAD_4 = EncoderShape(width=16, channels=4, hidden=2, named=True)          # lite models from 4.15, 4.25, 4.26
_HEAD_16 = EncoderShape(width=16, channels=16, hidden=2, named=True)        # 4.26.heavy

# architecture name -> shape; versions with the same network share one (the registry maps names to these)
RESIDUAL_SHAPES: dict[str, ResidualShape] = {
    "rife-4.5": ResidualShape(_STANDARD, None, out_channels=5, mask_residual=True),
    "rife-4.6": ResidualShape(_STANDARD, None, mask_residual=True),
    "rife-4.7": ResidualShape(_STANDARD, _SEQUENTIAL_1),
    "rife-4.10": ResidualShape(_STANDARD, _SEQUENTIAL_8),
    "rife-4.12.lite": ResidualShape(_LITE, _SEQUENTIAL_4),
    "rife-4.13": ResidualShape(_STANDARD, _HEAD_8),
    "rife-4.14.lite": ResidualShape(_STANDARD, _HEAD_8, groups=2),
    "rife-4.15.lite": ResidualShape(_LITE, _HEAD_4),
    "rife-4.20": ResidualShape((384, 192, 96, 48), _HEAD_8),
    "rife-4.21": ResidualShape((256, 192, 96, 48), _HEAD_8, out_channels=13, carries_features=True),
    "rife-4.22.lite": ResidualShape((192, 128, 64, 32), _HEAD_4, out_channels=13, carries_features=True),
    "rife-4.25": ResidualShape((192, 128, 96, 64, 32), _HEAD_4, out_channels=13, carries_features=True,
                               flow_scales=_FIVE_SCALES),
    "rife-4.25.lite": ResidualShape((192, 128, 96, 64, 24), _HEAD_4, out_channels=13, carries_features=True,
                                    flow_scales=(32.0, 16.0, 8.0, 4.0, 1.0)),
    "rife-4.25.heavy": ResidualShape((384, 256, 192, 128, 64), _HEAD_4, out_channels=13, carries_features=True,
                                     flow_scales=_FIVE_SCALES),
    "rife-4.26.heavy": ResidualShape((192, 128, 96, 64, 32), _HEAD_16, out_channels=13, carries_features=True,
                                     flow_scales=_FIVE_SCALES),
}


class RIFE45(RIFE4):
    """RIFE 4.5 to 4.26, one instance per `ResidualShape`."""

    def __init__(self, shape: ResidualShape) -> None:
        channels = 0 if shape.encoder is None else shape.encoder.channels
        features = 2 * channels  # both frames' features
        carried = shape.out_channels - 5 if shape.carries_features else 0
        # block0 sees img0, img1, features, timestep; later ones also the mask, flow and carried channels
        blocks = [ResidualFlowBlock(7 + features if i == 0 else 12 + features + carried, width, shape.out_channels,
                                    shape.groups) for i, width in enumerate(shape.widths)]
        encoder = None if shape.encoder is None else Encoder(shape.encoder)
        super().__init__(blocks, shape.flow_scales, encoder=encoder, feature_channels=channels,
                         mask_residual=shape.mask_residual, carries_features=shape.carries_features,
                         large_motion_retry=False)
