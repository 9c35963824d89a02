"""RIFE 3.1: flow-only IFNet, then a context pyramid and a U-Net that fuse the warped frames."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor, nn

from .layers import (
    InterpolationNet,
    Upsample2x,
    check_scale,
    conv_prelu,
    deconv_prelu,
    flow_alignment,
    resize,
    resize_flow,
    warp,
)

_FLOW_SCALES = (4.0, 2.0, 1.0)
_CTX = 32  # base channel count of the context and fusion nets


class FlowBlock(nn.Module):
    """Predicts a 4-channel flow residual at half the resolution of its input."""

    def __init__(self, in_ch: int, c: int = 80) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(conv_prelu(in_ch, c, 2), conv_prelu(c, 2 * c, 2))
        self.convblock0 = nn.Sequential(conv_prelu(2 * c, 2 * c), conv_prelu(2 * c, 2 * c))
        self.convblock1 = nn.Sequential(conv_prelu(2 * c, 2 * c), conv_prelu(2 * c, 2 * c))
        self.convblock2 = nn.Sequential(conv_prelu(2 * c, 2 * c), conv_prelu(2 * c, 2 * c))
        self.conv1 = Upsample2x(2 * c, 4)

    def forward(self, x: Tensor, flow: Tensor | None, scale: float) -> Tensor:
        x = resize(x, 1.0 / scale)
        if flow is not None:
            x = torch.cat((x, resize_flow(flow, 1.0 / scale)), 1)
        feat = self.conv0(x)
        feat = self.convblock0(feat) + feat
        feat = self.convblock1(feat) + feat
        feat = self.convblock2(feat) + feat
        return resize_flow(self.conv1(feat), scale)


class FlowNet(nn.Module):
    """Three blocks; returns the bidirectional flow at half the input resolution."""

    def __init__(self) -> None:
        super().__init__()
        self.block0 = FlowBlock(6)
        self.block1 = FlowBlock(10)
        self.block2 = FlowBlock(10)

    def forward(self, img0: Tensor, img1: Tensor) -> Tensor:
        flow = self.block0(torch.cat((img0, img1), 1), None, _FLOW_SCALES[0])
        for block, s in ((self.block1, _FLOW_SCALES[1]), (self.block2, _FLOW_SCALES[2])):
            full = resize_flow(flow, 2.0)
            warped = torch.cat((warp(img0, full[:, :2]), warp(img1, full[:, 2:4])), 1)
            flow = flow + block(warped, full, s)
        return flow


class DownPair(nn.Module):
    """Stride-2 conv then a plain conv, both with PReLU."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv1 = conv_prelu(in_ch, out_ch, 2)
        self.conv2 = conv_prelu(out_ch, out_ch)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.conv1(x))


class ContextNet(nn.Module):
    """Feature pyramid of one frame at 1/4..1/32, each level warped towards the middle frame."""

    def __init__(self) -> None:
        super().__init__()
        self.conv0 = DownPair(3, _CTX)
        self.conv1 = DownPair(_CTX, _CTX)
        self.conv2 = DownPair(_CTX, 2 * _CTX)
        self.conv3 = DownPair(2 * _CTX, 4 * _CTX)
        self.conv4 = DownPair(4 * _CTX, 8 * _CTX)

    def forward(self, img: Tensor, half_flow: Tensor) -> list[Tensor]:
        feat = self.conv0(img)
        flow = half_flow
        levels: list[Tensor] = []
        for stage in (self.conv1, self.conv2, self.conv3, self.conv4):
            feat = stage(feat)
            flow = resize_flow(flow, 0.5)
            levels.append(warp(feat, flow))
        return levels


class FusionNet(nn.Module):
    """U-Net over the warped frames, flow and context; outputs a 3-channel residual and a mask logit."""

    def __init__(self) -> None:
        super().__init__()
        c = _CTX
        self.conv0 = DownPair(10, c)
        self.down0 = DownPair(c, 2 * c)
        self.down1 = DownPair(4 * c, 4 * c)
        self.down2 = DownPair(8 * c, 8 * c)
        self.down3 = DownPair(16 * c, 16 * c)
        self.up0 = deconv_prelu(32 * c, 8 * c)
        self.up1 = deconv_prelu(16 * c, 4 * c)
        self.up2 = deconv_prelu(8 * c, 2 * c)
        self.up3 = deconv_prelu(4 * c, c)
        self.conv = Upsample2x(c, 4)

    def forward(self, warped0: Tensor, warped1: Tensor, flow: Tensor,
                ctx0: list[Tensor], ctx1: list[Tensor]) -> Tensor:
        s0 = self.down0(self.conv0(torch.cat((warped0, warped1, flow), 1)))
        s1 = self.down1(torch.cat((s0, ctx0[0], ctx1[0]), 1))
        s2 = self.down2(torch.cat((s1, ctx0[1], ctx1[1]), 1))
        s3 = self.down3(torch.cat((s2, ctx0[2], ctx1[2]), 1))
        x = self.up0(torch.cat((s3, ctx0[3], ctx1[3]), 1))
        x = self.up1(torch.cat((x, s2), 1))
        x = self.up2(torch.cat((x, s1), 1))
        x = self.up3(torch.cat((x, s0), 1))
        return self.conv(x)


class RIFE31(InterpolationNet):
    midpoint_only: ClassVar[bool] = True
    supports_ensemble = False
    weight_roles: ClassVar[tuple[str, ...]] = ("flownet", "contextnet", "unet")
    role_prefixes: ClassVar[dict[str, str]] = {"flownet": "flownet.", "contextnet": "contextnet.", "unet": "unet."}

    def __init__(self) -> None:
        super().__init__()
        self.flownet = FlowNet()
        self.contextnet = ContextNet()
        self.unet = FusionNet()

    def alignment(self, scale: float) -> int:
        check_scale(scale)
        # flow runs on the pair resized by `scale`; the fusion U-Net has five stride-2 levels (1/32)
        return math.lcm(32, flow_alignment(s / scale for s in _FLOW_SCALES))

    def forward(self, img0: Tensor, img1: Tensor, timestep: float, scale: float, ensemble: bool) -> Tensor:
        self._check_midpoint(timestep)
        check_scale(scale)
        # flow is estimated at `scale` resolution and comes back at half of the full resolution
        half_flow = resize_flow(self.flownet(resize(img0, scale), resize(img1, scale)), 1.0 / scale)
        ctx0 = self.contextnet(img0, half_flow[:, :2])
        ctx1 = self.contextnet(img1, half_flow[:, 2:4])
        flow = resize_flow(half_flow, 2.0)
        warped0, warped1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
        out = self.unet(warped0, warped1, flow, ctx0, ctx1)
        residual = torch.sigmoid(out[:, :3]) * 2 - 1
        weight = torch.sigmoid(out[:, 3:4])
        return torch.clamp(warped0 * weight + warped1 * (1 - weight) + residual, 0, 1)
