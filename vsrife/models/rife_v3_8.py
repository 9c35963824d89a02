"""RIFE 3.8: 3.5's flow net with two-stage 4x output heads, an adaptive-scale probe and optional ensemble."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from .layers import InterpolationNet, Upsample2x, check_scale, flow_alignment, warp
from .rife_v3_5 import FlowBlock as FlowBlock35
from .rife_v3_5 import run_block, run_block_swapped

# the probe flags large motion when its flow exceeds this many pixels per unit of the coarsest flow scale
_PROBE_PX_PER_SCALE = 16.0


class FlowBlock(FlowBlock35):
    head_upsampling: ClassVar[float] = 4.0

    def _heads(self, c: int) -> tuple[nn.Module, nn.Module]:
        def head(out_ch: int) -> nn.Sequential:
            return nn.Sequential(Upsample2x(c, c // 2), nn.PReLU(c // 2),
                                 Upsample2x(c // 2, out_ch))
        return head(4), head(1)


class RIFE38(InterpolationNet):
    midpoint_only: ClassVar[bool] = True
    supports_ensemble = True
    weight_roles: ClassVar[tuple[str, ...]] = ("flownet",)
    role_prefixes: ClassVar[dict[str, str]] = {"flownet": ""}
    unused_prefixes: ClassVar[tuple[str, ...]] = ("block_tea.",)

    def __init__(self) -> None:
        super().__init__()
        self.block0 = FlowBlock(11)
        self.block1 = FlowBlock(11)
        self.block2 = FlowBlock(11)

    @staticmethod
    def _flow_scales(scale: float) -> list[float]:
        return [4.0 / scale, 2.0 / scale, 1.0 / scale]

    def alignment(self, scale: float) -> int:
        check_scale(scale)
        # the probe runs block 0 at twice the coarsest scale, which is also where a doubled schedule starts
        base = self._flow_scales(scale)
        return flow_alignment(base + [2 * s for s in base])

    def forward(self, img0: Tensor, img1: Tensor, timestep: float, scale: float, ensemble: bool) -> Tensor:
        self._check_midpoint(timestep)
        check_scale(scale)
        scales = self._flow_scales(scale)
        flow = img0.new_zeros(img0.shape[0], 4, img0.shape[2], img0.shape[3])
        mask = img0.new_zeros(img0.shape[0], 1, img0.shape[2], img0.shape[3])
        # probe at half resolution; large motion there doubles every flow scale (decided over the whole batch)
        probe, _ = run_block(self.block0, img0, img1, mask, flow, 2 * scales[0])
        if bool(probe.abs().amax() > scales[0] * _PROBE_PX_PER_SCALE):
            scales = [2 * s for s in scales]
        warped0, warped1 = img0, img1
        for block, s in zip((self.block0, self.block1, self.block2), scales, strict=True):
            d_flow, d_mask = run_block(block, warped0, warped1, mask, flow, s)
            if ensemble:
                s_flow, s_mask = run_block_swapped(block, warped0, warped1, mask, flow, s)
                d_flow, d_mask = (d_flow + s_flow) / 2, (d_mask + s_mask) / 2
            flow = flow + d_flow
            mask = mask + d_mask
            warped0, warped1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
        weight = torch.sigmoid(mask)
        return warped0 * weight + warped1 * (1 - weight)
