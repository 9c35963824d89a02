"""RIFE 4.x: a coarse-to-fine IFNet whose blocks refine a bidirectional flow and a blend mask, any timestep.

`RIFE4` is the loop every 4.x version shares; this file also holds the family of 4.0 to 4.4 (four blocks of plain
3x3 convolutions, a transposed-convolution head). rife_v4_5.py builds 4.5 to 4.26 on the same loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from .layers import (InterpolationNet, Upsample2x, check_scale, conv_leaky, conv_prelu, flow_alignment, resize,
                     resize_flow, swap_flow, warp)

# residual flow (both halves) above this many pixels after block 1 means the motion is too large for the scales
_LARGE_MOTION_PX = 32.0

# flow, mask and what else a block returns: (flow residual or flow, mask logits, channels after the mask)
BlockOutput = tuple[Tensor, Tensor, Tensor]


class RIFE4(InterpolationNet):
    """The 4.x loop: block i sees both frames warped by the flow so far (and, from 4.7, warped per-frame features).

    blocks: named block0, block1, ... (their keys in the published files); flow_scales: each block's
    downsampling at scale 1; encoder: the per-frame feature net (4.7+, key prefix ``encode.``), which returns
    feature_channels channels; mask_residual: blocks add to the mask (up to 4.6) or replace it (4.7+);
    carries_features: the channels a block returns after the mask feed the next block (4.21+, which publish no
    ensemble); large_motion_retry: 4.0 and 4.1 restart with doubled flow scales when block 1 finds more than
    32 px of residual motion.
    """

    midpoint_only: ClassVar[bool] = False
    weight_roles: ClassVar[tuple[str, ...]] = ("flownet",)
    role_prefixes: ClassVar[dict[str, str]] = {"flownet": ""}
    # training-time parts the published files may carry (teacher block, refinement nets, timing head)
    unused_prefixes: ClassVar[tuple[str, ...]] = ("block_tea.", "teacher.", "caltime.", "contextnet.", "unet.")

    def __init__(self, blocks: Sequence[nn.Module], flow_scales: Sequence[float], *, encoder: nn.Module | None,
                 feature_channels: int, mask_residual: bool, carries_features: bool,
                 large_motion_retry: bool) -> None:
        super().__init__()
        for i, block in enumerate(blocks):
            self.add_module(f"block{i}", block)
        self.blocks = list(blocks)  # the same modules, in order (registered above under their published names)
        self.encode = encoder  # a submodule when given (keys encode.*), else a plain None
        self.feature_channels = feature_channels
        self.flow_scales = tuple(flow_scales)
        self.mask_residual = mask_residual
        self.carries_features = carries_features
        self.large_motion_retry = large_motion_retry
        self.supports_ensemble = not carries_features

    def alignment(self, scale: float) -> int:
        check_scale(scale)
        base = [s / scale for s in self.flow_scales]
        # the large-motion retry doubles every flow scale, so its coarsest level sets the multiple
        return flow_alignment(base + [2 * s for s in base] if self.large_motion_retry else base)

    def encode_frame(self, image: Tensor) -> Tensor | None:
        return None if self.encode is None else self.encode(image)

    def forward(self, img0: Tensor, img1: Tensor, timestep: float, scale: float, ensemble: bool,
                features: tuple[Tensor, Tensor] | None = None) -> Tensor:
        _, mask, warped0, warped1 = self.estimate(img0, img1, timestep, scale, ensemble, features)
        weight = torch.sigmoid(mask)
        return warped0 * weight + warped1 * (1 - weight)

    def estimate(self, img0: Tensor, img1: Tensor, timestep: float | Tensor, scale: float, ensemble: bool,
                 features: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(flow to frames 0 and 1 from time t, mask logits, both warped frames); timestep may be N x 1 x 1 x 1.

        features: encode_frame(img0), encode_frame(img1) when the caller has them already (computed here if None).
        """
        check_scale(scale)
        if ensemble and not self.supports_ensemble:
            raise ValueError(f"{type(self).__name__} with feature-carrying blocks has no ensemble mode")
        if features is None and self.encode is not None:
            features = (self.encode(img0), self.encode(img1))  # from the frames as given, as published
        img0, img1 = img0.clamp(0.0, 1.0), img1.clamp(0.0, 1.0)
        scales = [s / scale for s in self.flow_scales]
        t = torch.ones_like(img0[:, :1]) * timestep
        flow: Tensor | None = None
        mask: Tensor | None = None
        carried: Tensor | None = None
        warped0, warped1 = img0, img1
        for i, block in enumerate(self.blocks):
            warped_features = self._warp_features(features, flow)
            d_flow, d_mask, extra = self._pass(block, warped0, warped1, warped_features, t, mask, carried, flow,
                                               scales[i])
            if i == 1 and self.large_motion_retry and _large_motion(d_flow):
                scales = [2 * s for s in scales]
                # as published: the rerun of block 0 is a single (non-ensembled) pass
                flow, mask, _ = self._pass(self.blocks[0], img0, img1, features, t, None, None, None, scales[0])
                warped0, warped1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
                warped_features = self._warp_features(features, flow)
                d_flow, d_mask, extra = self._pass(block, warped0, warped1, warped_features, t, mask, carried, flow,
                                                   scales[i])
            if ensemble:
                s_flow, s_mask = self._swapped_pass(block, warped0, warped1, warped_features, t, mask, flow,
                                                    scales[i])
                d_flow, d_mask = (d_flow + s_flow) / 2, (d_mask + s_mask) / 2
            flow = d_flow if flow is None else flow + d_flow
            mask = mask + d_mask if mask is not None and self.mask_residual else d_mask
            carried = extra if self.carries_features else None
            warped0, warped1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
        assert flow is not None and mask is not None
        return flow, mask, warped0, warped1

    @staticmethod
    def _warp_features(features: tuple[Tensor, Tensor] | None,
                       flow: Tensor | None) -> tuple[Tensor, Tensor] | None:
        if features is None or flow is None:
            return features
        return warp(features[0], flow[:, :2]), warp(features[1], flow[:, 2:4])

    @staticmethod
    def _pass(block: nn.Module, a: Tensor, b: Tensor, features: tuple[Tensor, Tensor] | None, t: Tensor,
              mask: Tensor | None, carried: Tensor | None, flow: Tensor | None, scale: float) -> BlockOutput:
        parts = [a, b, *(features or ()), t, *(x for x in (mask, carried) if x is not None)]
        output: BlockOutput = block(torch.cat(parts, 1), flow, scale)
        return output

    def _swapped_pass(self, block: nn.Module, a: Tensor, b: Tensor, features: tuple[Tensor, Tensor] | None,
                      t: Tensor, mask: Tensor | None, flow: Tensor | None, scale: float) -> tuple[Tensor, Tensor]:
        """Run the block on the swapped pair at 1-t and express the result in the unswapped frame."""
        swapped_features = None if features is None else (features[1], features[0])
        f, m, _ = self._pass(block, b, a, swapped_features, 1 - t, None if mask is None else -mask, None,
                             None if flow is None else swap_flow(flow), scale)
        return swap_flow(f), -m


def _large_motion(d_flow: Tensor) -> bool:
    # one host sync for both halves; decided over the whole batch, like the published code
    peaks = torch.stack((d_flow[:, :2].abs().amax(), d_flow[:, 2:4].abs().amax()))
    return bool(peaks.min() > _LARGE_MOTION_PX)


class FlowBlock(nn.Module):
    """Predicts a 4-channel flow residual and a 1-channel mask residual at 1/scale resolution."""

    def __init__(self, in_ch: int, width: int, conv: Callable[[int, int, int], nn.Sequential],
                 residual: bool) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(conv(in_ch, width // 2, 2), conv(width // 2, width, 2))
        self.convblock = nn.Sequential(*(conv(width, width, 1) for _ in range(8)))
        self.lastconv = Upsample2x(width, 5)
        self.residual = residual

    def forward(self, x: Tensor, flow: Tensor | None, scale: float) -> BlockOutput:
        x = resize(x, 1.0 / scale)
        if flow is not None:
            x = torch.cat((x, resize_flow(flow, 1.0 / scale)), 1)
        feat = self.conv0(x)
        feat = self.convblock(feat) + feat if self.residual else self.convblock(feat)
        # the transposed conv restores 1/(2*scale) of the input size; one resize brings it back to full size
        out = resize(self.lastconv(feat), 2.0 * scale)
        return out[:, :4] * (2.0 * scale), out[:, 4:5], out[:, 5:]


@dataclass(frozen=True)
class PlainShape:
    """What differs between 4.0/4.1 and 4.2-4.4 (same widths 192/128/96/64 and flow scales 8/4/2/1)."""

    prelu: bool               # PReLU after each convolution (4.0, 4.1); LeakyReLU(0.2) from 4.2
    residual: bool            # the eight convolutions' output is added to their input (4.0, 4.1)
    large_motion_retry: bool  # see RIFE4


PLAIN_SHAPES: dict[str, PlainShape] = {
    "rife-4.0": PlainShape(prelu=True, residual=True, large_motion_retry=True),
    "rife-4.2": PlainShape(prelu=False, residual=False, large_motion_retry=False),
}


class RIFE40(RIFE4):
    """RIFE 4.0 to 4.4: four blocks of plain convolutions, no feature encoder."""

    def __init__(self, shape: PlainShape = PLAIN_SHAPES["rife-4.0"]) -> None:
        conv = conv_prelu if shape.prelu else conv_leaky
        # block0 sees img0, img1, timestep (7); later ones add the mask and the current flow (12)
        blocks = [FlowBlock(7 if i == 0 else 12, width, conv, shape.residual)
                  for i, width in enumerate((192, 128, 96, 64))]
        super().__init__(blocks, (8.0, 4.0, 2.0, 1.0), encoder=None, feature_channels=0, mask_residual=True,
                         carries_features=False, large_motion_retry=shape.large_motion_retry)
        if shape == PLAIN_SHAPES["rife-4.0"]:
            self.memory_bytes_per_pixel = 250.0  # 246 B/px + 25 MiB fitted over 640x272..2560x1440, CPU fp32
