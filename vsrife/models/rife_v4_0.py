"""RIFE 4.0: a coarse-to-fine IFNet of four blocks that predicts bidirectional flow and a blend mask."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from .layers import (
    InterpolationNet, Upsample2x, check_scale, conv_prelu, flow_alignment, resize, resize_flow, swap_flow, warp,
)

# residual flow (both halves) above this many pixels after block 1 means the motion is too large for the scales
_LARGE_MOTION_PX = 32.0


class FlowBlock(nn.Module):
    """Predicts a 4-channel flow residual and a 1-channel mask residual at 1/scale resolution."""

    def __init__(self, in_ch: int, width: int) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(conv_prelu(in_ch, width // 2, 2), conv_prelu(width // 2, width, 2))
        self.convblock = nn.Sequential(*(conv_prelu(width, width) for _ in range(8)))
        self.lastconv = Upsample2x(width, 5)

    def forward(self, x: Tensor, flow: Tensor | None, scale: float) -> tuple[Tensor, Tensor]:
        x = resize(x, 1.0 / scale)
        if flow is not None:
            x = torch.cat((x, resize_flow(flow, 1.0 / scale)), 1)
        feat = self.conv0(x)
        feat = self.convblock(feat) + feat
        # the transposed conv restores 1/(2*scale) of the input size; one resize brings it back to full size
        out = resize(self.lastconv(feat), 2.0 * scale)
        return out[:, :4] * (2.0 * scale), out[:, 4:5]


class RIFE40(InterpolationNet):
    memory_bytes_per_pixel: ClassVar[float] = 250.0  # 246 B/px + 25 MiB fitted over 640x272..2560x1440, CPU fp32
    midpoint_only: ClassVar[bool] = False
    supports_ensemble: ClassVar[bool] = True
    weight_roles: ClassVar[tuple[str, ...]] = ("flownet",)
    role_prefixes: ClassVar[dict[str, str]] = {"flownet": ""}
    # the teacher block and the refinement nets (contextnet, unet) are training-only in 4.0 ("fastmode")
    unused_prefixes: ClassVar[tuple[str, ...]] = ("block_tea.", "contextnet.", "unet.")

    def __init__(self) -> None:
        super().__init__()
        # inputs: block0 sees img0, img1, timestep (7); later ones add the mask and the current flow (12)
        self.block0 = FlowBlock(7, 192)
        self.block1 = FlowBlock(12, 128)
        self.block2 = FlowBlock(12, 96)
        self.block3 = FlowBlock(12, 64)

    @staticmethod
    def _flow_scales(scale: float) -> list[float]:
        return [8.0 / scale, 4.0 / scale, 2.0 / scale, 1.0 / scale]

    def alignment(self, scale: float) -> int:
        check_scale(scale)
        base = self._flow_scales(scale)
        # the large-motion retry doubles every flow scale, so its coarsest level sets the multiple
        return flow_alignment(base + [2 * s for s in base])

    @staticmethod
    def _pass(block: FlowBlock, a: Tensor, b: Tensor, t: Tensor, mask: Tensor | None,
              flow: Tensor | None, scale: float) -> tuple[Tensor, Tensor]:
        parts = [a, b, t] if mask is None else [a, b, t, mask]
        return block(torch.cat(parts, 1), flow, scale)

    def _swapped_pass(self, block: FlowBlock, a: Tensor, b: Tensor, t: Tensor, mask: Tensor | None,
                      flow: Tensor | None, scale: float) -> tuple[Tensor, Tensor]:
        """Run the block on the swapped pair at 1-t and express the result in the unswapped frame."""
        f, m = self._pass(block, b, a, 1 - t, None if mask is None else -mask,
                          None if flow is None else swap_flow(flow), scale)
        return swap_flow(f), -m

    def forward(self, img0: Tensor, img1: Tensor, timestep: float, scale: float, ensemble: bool) -> Tensor:
        _, mask, warped0, warped1 = self.estimate(img0, img1, timestep, scale, ensemble)
        weight = torch.sigmoid(mask)
        return warped0 * weight + warped1 * (1 - weight)

    def estimate(self, img0: Tensor, img1: Tensor, timestep: float | Tensor, scale: float,
                 ensemble: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(flow to frames 0 and 1 from time t, mask logits, both warped frames); timestep may be N x 1 x 1 x 1."""
        check_scale(scale)
        scales = self._flow_scales(scale)
        t = torch.ones_like(img0[:, :1]) * timestep
        blocks = (self.block0, self.block1, self.block2, self.block3)
        flow: Tensor | None = None
        mask: Tensor | None = None
        warped0, warped1 = img0, img1
        for i, block in enumerate(blocks):
            d_flow, d_mask = self._pass(block, warped0, warped1, t, mask, flow, scales[i])
            if i == 1 and self._large_motion(d_flow):
                scales = [2 * s for s in scales]
                # as published: the rerun of block 0 is a single (non-ensembled) pass
                flow, mask = self._pass(blocks[0], img0, img1, t, None, None, scales[0])
                warped0, warped1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
                d_flow, d_mask = self._pass(block, warped0, warped1, t, mask, flow, scales[i])
            if ensemble:
                s_flow, s_mask = self._swapped_pass(block, warped0, warped1, t, mask, flow, scales[i])
                d_flow, d_mask = (d_flow + s_flow) / 2, (d_mask + s_mask) / 2
            flow = d_flow if flow is None else flow + d_flow
            mask = d_mask if mask is None else mask + d_mask
            warped0, warped1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
        assert flow is not None and mask is not None
        return flow, mask, warped0, warped1

    @staticmethod
    def _large_motion(d_flow: Tensor) -> bool:
        # one host sync for both halves; decided over the whole batch, like the published code
        peaks = torch.stack((d_flow[:, :2].abs().amax(), d_flow[:, 2:4].abs().amax()))
        return bool(peaks.min() > _LARGE_MOTION_PX)
