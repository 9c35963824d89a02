"""RIFE 3.5: three flow+mask blocks, always run on the pair and the swapped pair and averaged."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from .layers import (
    InterpolationNet,
    Upsample2x,
    check_scale,
    conv_prelu,
    flow_alignment,
    resize,
    resize_flow,
    swap_flow,
    warp,
)

_FLOW_SCALES = (4.0, 2.0, 1.0)


class FlowBlock(nn.Module):
    """Predicts flow and mask residuals; the heads upsample by 2 (3.8 overrides them with 4x heads)."""

    head_upsampling: ClassVar[float] = 2.0

    def __init__(self, in_ch: int, c: int = 90) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(conv_prelu(in_ch, c // 2, 2), conv_prelu(c // 2, c, 2))
        self.convblock0 = nn.Sequential(conv_prelu(c, c), conv_prelu(c, c))
        self.convblock1 = nn.Sequential(conv_prelu(c, c), conv_prelu(c, c))
        self.convblock2 = nn.Sequential(conv_prelu(c, c), conv_prelu(c, c))
        self.convblock3 = nn.Sequential(conv_prelu(c, c), conv_prelu(c, c))
        self.conv1, self.conv2 = self._heads(c)

    def _heads(self, c: int) -> tuple[nn.Module, nn.Module]:
        return nn.Sequential(Upsample2x(c, 4)), Upsample2x(c, 1)

    def forward(self, x: Tensor, flow: Tensor, scale: float) -> tuple[Tensor, Tensor]:
        x = torch.cat((resize(x, 1.0 / scale), resize_flow(flow, 1.0 / scale)), 1)
        feat = self.conv0(x)
        feat = self.convblock0(feat) + feat
        feat = self.convblock1(feat) + feat
        feat = self.convblock2(feat) + feat
        feat = self.convblock3(feat) + feat
        up = 4 * scale / self.head_upsampling  # conv0 downsampled by 4, the heads upsampled by head_upsampling
        return resize_flow(self.conv1(feat), up), resize(self.conv2(feat), up)


def run_block(block: FlowBlock, warped0: Tensor, warped1: Tensor, mask: Tensor, flow: Tensor,
              scale: float) -> tuple[Tensor, Tensor]:
    """One block pass on (warped0, warped1)."""
    return block(torch.cat((warped0, warped1, mask), 1), flow, scale)


def run_block_swapped(block: FlowBlock, warped0: Tensor, warped1: Tensor, mask: Tensor, flow: Tensor,
                      scale: float) -> tuple[Tensor, Tensor]:
    """The same pass on the swapped pair, mapped back to the unswapped frame."""
    f, m = run_block(block, warped1, warped0, -mask, swap_flow(flow), scale)
    return swap_flow(f), -m


class RIFE35(InterpolationNet):
    midpoint_only: ClassVar[bool] = True
    # the swapped-pair average is built into 3.5 (its published quality was measured that way): always on
    supports_ensemble = True
    weight_roles: ClassVar[tuple[str, ...]] = ("flownet",)
    role_prefixes: ClassVar[dict[str, str]] = {"flownet": ""}
    unused_prefixes: ClassVar[tuple[str, ...]] = ("block_tea.",)

    def __init__(self) -> None:
        super().__init__()
        self.block0 = FlowBlock(11)
        self.block1 = FlowBlock(11)
        self.block2 = FlowBlock(11)

    def alignment(self, scale: float) -> int:
        check_scale(scale)
        return flow_alignment(s / scale for s in _FLOW_SCALES)

    def forward(self, img0: Tensor, img1: Tensor, timestep: float, scale: float, ensemble: bool) -> Tensor:
        self._check_midpoint(timestep)
        check_scale(scale)
        small0, small1 = resize(img0, scale), resize(img1, scale)
        flow = small0.new_zeros(small0.shape[0], 4, small0.shape[2], small0.shape[3])
        mask = small0.new_zeros(small0.shape[0], 1, small0.shape[2], small0.shape[3])
        warped0, warped1 = small0, small1
        for block, s in zip((self.block0, self.block1, self.block2), _FLOW_SCALES, strict=True):
            f0, m0 = run_block(block, warped0, warped1, mask, flow, s)
            f1, m1 = run_block_swapped(block, warped0, warped1, mask, flow, s)
            flow = flow + (f0 + f1) / 2
            mask = mask + (m0 + m1) / 2
            warped0, warped1 = warp(small0, flow[:, :2]), warp(small1, flow[:, 2:4])
        if scale != 1:
            # the published code warps the resized frames here (wrong flow units); warp the full-size ones
            flow, mask = resize_flow(flow, 1.0 / scale), resize(mask, 1.0 / scale)
            warped0, warped1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
        weight = torch.sigmoid(mask)
        return warped0 * weight + warped1 * (1 - weight)
