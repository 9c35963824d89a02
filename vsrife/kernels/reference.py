"""The glue between RIFE's convolutions in plain PyTorch: the definition the native kernels (glue.cpp) must match.

Every function here runs on any device and under autograd; vsrife.kernels dispatches to the native version where
one applies (CPU tensors, no gradient) and to these otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class Warped:
    """A full-size float32 image (or feature map) moved by two channels of the flow: 0 (x, y to frame 0) or 2."""

    image: Tensor
    flow_channel: int


@dataclass(frozen=True)
class Scaled:
    """A full-size float32 tensor whose values are multiplied by `gain` after resizing (a flow: 1 / factor)."""

    tensor: Tensor
    gain: float


@dataclass(frozen=True)
class Constant:
    """A plane holding one value per batch item (the timestep); values: float32, shape (N,)."""

    values: Tensor


Part = Tensor | Warped | Scaled | Constant


def resize(x: Tensor, factor: float) -> Tensor:
    """Bilinear resize by a factor (half-pixel centres); a factor of 1 is an exact identity, so skip it."""
    if factor == 1:
        return x
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False, recompute_scale_factor=False)


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """Backward-warp image by flow (pixels): out[y, x] = image[y + fy, x + fx], bilinear, border padding.

    16-bit inputs are sampled in float32: normalised coordinates in bf16/fp16 are off by several/about one pixel at
    1080p width.
    """
    out_dtype = image.dtype
    work = torch.float32 if image.element_size() < 4 else out_dtype
    image = image.to(work)
    flow = flow.to(work)
    n, _, h, w = flow.shape
    xs = torch.linspace(-1.0, 1.0, w, device=flow.device, dtype=work).view(1, 1, w).expand(n, h, w)
    ys = torch.linspace(-1.0, 1.0, h, device=flow.device, dtype=work).view(1, h, 1).expand(n, h, w)
    # align_corners=True: -1 and 1 are the centres of the first and last pixel, so one pixel is 2/(size-1)
    gx = xs + flow[:, 0] / ((image.shape[3] - 1.0) / 2.0)
    gy = ys + flow[:, 1] / ((image.shape[2] - 1.0) / 2.0)
    grid = torch.stack((gx, gy), dim=3)
    out = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.to(out_dtype)


def part_tensor(part: Part) -> Tensor | None:
    """The full-size tensor a part carries (None for a Constant)."""
    if isinstance(part, Warped):
        return part.image
    if isinstance(part, Scaled):
        return part.tensor
    return None if isinstance(part, Constant) else part


def _full_size(part: Part, flow: Tensor | None, like: Tensor) -> Tensor:
    if isinstance(part, Warped):
        assert flow is not None, "Warped parts need a flow"
        return warp(part.image, flow[:, part.flow_channel : part.flow_channel + 2])
    if isinstance(part, Scaled):
        return part.tensor
    if isinstance(part, Constant):
        return part.values.view(-1, 1, 1, 1).expand(like.shape[0], 1, *like.shape[2:]).to(like.dtype)
    return part


def block_input(parts: Sequence[Part], flow: Tensor | None, factor: float, dtype: torch.dtype,
                channels_last: bool) -> Tensor:
    """The parts concatenated along channels (Warped ones warped by `flow`), resized by 1 / factor, as `dtype`."""
    like = next(t for t in map(part_tensor, parts) if t is not None)
    planes = []
    for part in parts:
        plane = resize(_full_size(part, flow, like), 1.0 / factor)
        planes.append(plane * part.gain if isinstance(part, Scaled) else plane)
    x = torch.cat(planes, 1).to(dtype)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


def block_output(head: Tensor, factor: float, gain: float, flow: Tensor | None, mask: Tensor | None,
                 extra_channels: int, shuffles: int = 0) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
    """Add a block's head (flow 4, mask 1, extra channels; 1/factor of the full size) to the float32 state; the head
    is `head` pixel-shuffled by 2 `shuffles` times.

    Returns (flow + gain * resized flow channels, mask + resized mask channel (mask None: 0), the resized extra
    channels or None, the largest |flow step| of channels 0-1 and of 2-3 as a 2-element tensor).
    """
    for _ in range(shuffles):
        head = F.pixel_shuffle(head, 2)
    up = resize(head[:, : 5 + extra_channels].float(), factor)
    step = up[:, :4] * gain
    new_flow = step if flow is None else flow + step
    new_mask = up[:, 4:5] if mask is None else mask + up[:, 4:5]
    extra = up[:, 5:] if extra_channels else None
    peaks = torch.stack((step[:, :2].abs().amax(), step[:, 2:4].abs().amax()))
    return new_flow, new_mask.contiguous(), extra, peaks


def warp_blend(img0: Tensor, img1: Tensor, flow: Tensor, mask: Tensor) -> Tensor:
    """img0 and img1 warped by the two halves of the flow, blended with sigmoid(mask) as img0's weight (float32)."""
    weight = torch.sigmoid(mask)
    return warp(img0, flow[:, :2]) * weight + warp(img1, flow[:, 2:4]) * (1 - weight)
