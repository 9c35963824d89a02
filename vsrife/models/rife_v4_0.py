"""RIFE 4.x: a coarse-to-fine IFNet whose blocks refine a bidirectional flow and a blend mask, any timestep.

`RIFE4` is the loop every 4.x version shares; this file also holds the family of 4.0 to 4.4 (four blocks of plain
3x3 convolutions, a transposed-convolution head). rife_v4_5.py builds 4.5 to 4.26 on the same loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, cast

import torch
from torch import Tensor, nn

from .. import kernels
from .layers import (
    ConvPReLU,
    InterpolationNet,
    Upsample2x,
    check_scale,
    conv_leaky,
    flow_alignment,
    resize,
    resize_flow,
    swap_flow,
)

# residual flow (both halves) above this many pixels after block 1 means the motion is too large for the scales
_LARGE_MOTION_PX = 32.0

# flow, mask and what else a block returns: (flow residual or flow, mask logits, channels after the mask)
BlockOutput = tuple[Tensor, Tensor, Tensor]
# a block's head: flow, mask and further channels as a tensor still to be pixel-shuffled by 2 this many times
Head = tuple[Tensor, int]


class Block(Protocol):
    """What the loop needs of a block (FlowBlock, ResidualFlowBlock): its head, which comes out at
    1/(scale * head_scale) of the full size, and its parameters."""

    head_scale: ClassVar[float]

    def head(self, x: Tensor) -> Head: ...

    def parameters(self) -> Iterator[nn.Parameter]: ...


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
    float32_frames: ClassVar[bool] = True  # only the convolutions run in the net's dtype
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
        # the same modules, in order (registered above under their published names)
        self.blocks: list[Block] = [cast(Block, block) for block in blocks]
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

    def use_channels_last(self) -> None:
        self.channels_last = True
        self.to(memory_format=torch.channels_last)

    @property
    def compute_dtype(self) -> torch.dtype:
        """The dtype of the convolutions (the parameters'); flow, mask, warps and the blend stay float32."""
        return next(self.blocks[0].parameters()).dtype

    def encode_frame(self, image: Tensor) -> Tensor | None:
        """Float32 features of one frame (4.7+), computed in the net's dtype from the frame as given; contiguous
        (not channels-last), the layout the native warps read."""
        if self.encode is None:
            return None
        features: Tensor = self.encode(image.to(self.compute_dtype))
        return features.float().contiguous()

    def forward(self, img0: Tensor, img1: Tensor, timestep: float, scale: float, ensemble: bool,
                features: tuple[Tensor, Tensor] | None = None) -> Tensor:
        features = self._features(img0, img1, features)
        img0, img1 = _state(img0), _state(img1)
        flow, mask = self._estimate(img0, img1, features, timestep, scale, ensemble)
        return kernels.warp_blend(img0, img1, flow, mask)

    def estimate(self, img0: Tensor, img1: Tensor, timestep: float | Tensor, scale: float, ensemble: bool,
                 features: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """(float32 flow to frames 0 and 1 from time t, mask logits); timestep may be N x 1 x 1 x 1.

        features: encode_frame(img0), encode_frame(img1) when the caller has them already (computed here if None).
        """
        features = self._features(img0, img1, features)
        return self._estimate(_state(img0), _state(img1), features, timestep, scale, ensemble)

    def _features(self, img0: Tensor, img1: Tensor,
                  features: tuple[Tensor, Tensor] | None) -> tuple[Tensor, Tensor] | None:
        if self.encode is None:
            return None
        if features is None:  # from the frames as given, as published
            first, second = self.encode_frame(img0), self.encode_frame(img1)
            assert first is not None and second is not None  # this net has an encoder
            return first, second
        return features[0].float().contiguous(), features[1].float().contiguous()

    def _estimate(self, img0: Tensor, img1: Tensor, features: tuple[Tensor, Tensor] | None,
                  timestep: float | Tensor, scale: float, ensemble: bool) -> tuple[Tensor, Tensor]:
        check_scale(scale)
        if ensemble and not self.supports_ensemble:
            raise ValueError(f"{type(self).__name__} with feature-carrying blocks has no ensemble mode")
        scales = [s / scale for s in self.flow_scales]
        t = torch.as_tensor(timestep, dtype=torch.float32, device=img0.device).reshape(-1).expand(img0.shape[0])
        flow: Tensor | None = None
        mask: Tensor | None = None
        carried: Tensor | None = None
        for i, block in enumerate(self.blocks):
            head = self._head(block, scales[i], img0, img1, features, t, mask, carried, flow)
            step = None
            if i == 1 and self.large_motion_retry:
                step = self._step(block, head, scales[i], flow, mask)
                if bool(step[3].min() > _LARGE_MOTION_PX):
                    scales = [2 * s for s in scales]
                    # as published: the rerun of block 0 is a single (non-ensembled) pass
                    head0 = self._head(self.blocks[0], scales[0], img0, img1, features, t, None, None, None)
                    flow, mask, carried, _ = self._step(self.blocks[0], head0, scales[0], None, None)
                    head = self._head(block, scales[i], img0, img1, features, t, mask, carried, flow)
                    step = None
            if ensemble:
                swapped = self._head(block, scales[i], img1, img0, None if features is None else features[::-1],
                                     1 - t, None if mask is None else -mask, None,
                                     None if flow is None else swap_flow(flow))
                head = _average_heads(head, swapped)
                step = None
            if step is None:
                step = self._step(block, head, scales[i], flow, mask)
            flow, mask, extra, _ = step
            carried = extra if self.carries_features else None
        assert flow is not None and mask is not None
        return flow, mask

    def _head(self, block: Block, scale: float, img0: Tensor, img1: Tensor,
              features: tuple[Tensor, Tensor] | None, t: Tensor, mask: Tensor | None, carried: Tensor | None,
              flow: Tensor | None) -> Head:
        """The block's head at 1/(scale * head_scale): its input is both frames and features (warped by the flow
        so far), the timestep, the mask and carried channels, then the flow, resized by 1/scale."""
        state = [x for x in (mask, carried) if x is not None]
        parts: list[kernels.Part]
        if flow is None:
            parts = [img0, img1, *(features or ()), kernels.Constant(t), *state]
        else:
            warped = [kernels.Warped(img0, 0), kernels.Warped(img1, 2)]
            if features is not None:
                warped += [kernels.Warped(features[0], 0), kernels.Warped(features[1], 2)]
            parts = [*warped, kernels.Constant(t), *state, kernels.Scaled(flow, 1.0 / scale)]
        x = kernels.block_input(parts, flow, scale, self.compute_dtype, channels_last=self.channels_last)
        head: Head = block.head(x)
        return head

    def _step(self, block: Block, head: Head, scale: float, flow: Tensor | None,
              mask: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
        """The state after the block: (flow, mask, carried channels, peaks of the flow step) at full size."""
        factor = block.head_scale * scale
        tensor, shuffles = head
        extra = tensor.shape[1] // 4**shuffles - 5 if self.carries_features else 0
        mask = mask if self.mask_residual else None
        return kernels.block_output(tensor, factor, factor, flow, mask, extra, shuffles)


def _state(image: Tensor) -> Tensor:
    """A frame as the loop keeps it: float32, clamped to [0, 1] as published."""
    return image.float().clamp(0.0, 1.0)


def _average_heads(head: Head, swapped: Head) -> Head:
    """The mean of a head and the swapped pair's head expressed for the unswapped one (its flow halves exchanged,
    its mask negated), in float32; flow and mask channels only. A channel is 4**shuffles tensor channels."""
    (a, shuffles), (b, _) = head, swapped
    g = 4**shuffles
    b = torch.cat((b[:, 2 * g : 4 * g], b[:, 0 : 2 * g], -b[:, 4 * g : 5 * g]), 1)
    return (a[:, : 5 * g].float() + b.float()) / 2, shuffles


class FlowBlock(nn.Module):
    """Predicts a 4-channel flow residual and a 1-channel mask residual at 1/scale resolution."""

    head_scale: ClassVar[float] = 2.0  # the head comes out at 1/(2 * scale) of the full size

    def __init__(self, in_ch: int, width: int, conv: Callable[[int, int, int], nn.Sequential],
                 residual: bool) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(conv(in_ch, width // 2, 2), conv(width // 2, width, 2))
        self.convblock = nn.Sequential(*(conv(width, width, 1) for _ in range(8)))
        self.lastconv = Upsample2x(width, 5)
        self.residual = residual

    def features(self, x: Tensor) -> Tensor:
        """What the head sees, at a quarter of the size of x (x: the input already resized by 1/scale)."""
        feat = self.conv0(x)
        return self.convblock(feat) + feat if self.residual else self.convblock(feat)

    def head(self, x: Tensor) -> tuple[Tensor, int]:
        """Flow, mask (and further) channels at half the size of x, as a tensor and the pixel shuffles by 2 still
        to apply to it (the glue reads them in place)."""
        return self.lastconv.unshuffled(self.features(x)), 1

    def forward(self, x: Tensor, flow: Tensor | None, scale: float) -> BlockOutput:
        """The published interface (full-size input and output), for graph export; RIFE4 uses head()."""
        x = resize(x, 1.0 / scale)
        if flow is not None:
            x = torch.cat((x, resize_flow(flow, 1.0 / scale)), 1)
        out = resize(self.lastconv(self.features(x)), 2.0 * scale)  # any 2x upsampling layer (graph export)
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
        conv = ConvPReLU if shape.prelu else conv_leaky
        # block0 sees img0, img1, timestep (7); later ones add the mask and the current flow (12)
        blocks = [FlowBlock(7 if i == 0 else 12, width, conv, shape.residual)
                  for i, width in enumerate((192, 128, 96, 64))]
        super().__init__(blocks, (8.0, 4.0, 2.0, 1.0), encoder=None, feature_channels=0, mask_residual=True,
                         carries_features=False, large_motion_retry=shape.large_motion_retry)
        if shape == PLAIN_SHAPES["rife-4.0"]:
            self.memory_bytes_per_pixel = 250.0  # 246 B/px + 25 MiB fitted over 640x272..2560x1440, CPU fp32
