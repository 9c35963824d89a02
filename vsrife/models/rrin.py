"""RRIN (Li, Yuan, Wang, ICASSP 2020): flow, flow residue, adaptive weight map and image residue, four U-Nets.

State-dict names and shapes follow the authors' release (`Flow_L.*`, `refine_flow.*`, `Mask.*`, `final.*`), so
their `pretrained_model.pth.tar` loads strictly. Every variant returns the blend plus the image residue, clamped, as
the authors' `forward` has since their commit 8426371 ("Fixed"); they differ only in the sampling grid:

- `RRIN` (our weights): exact pixel-centre warping.
- `RRINOfficial` (the authors' file, and the popular fork's, which calls the flow net `Flow`): their grid maps
  pixel x to 2 (x / W - 0.5) under align_corners=True (PyTorch 1.0's grid_sample), off by up to one pixel at the
  far edges; reproduced because their weights were trained that way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import InterpolationNet

# The blend's denominator guard, as released.
_BLEND_EPS = 1e-8


def _conv_block(in_ch: int, out_ch: int) -> nn.Sequential:
    """Two 3x3 convolutions with LeakyReLU(0.1) (keys .0 and .2)."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.LeakyReLU(0.1),
        nn.Conv2d(out_ch, out_ch, 3, padding=1), nn.LeakyReLU(0.1),
    )


class _DownBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.block = _conv_block(in_ch, out_ch)

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class _UpBlock(nn.Module):
    """Bilinear x2 and a 3x3 conv, then the skip connection and a conv block."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                nn.Conv2d(in_ch, out_ch, 3, padding=1))
        self.conv_block = _DownBlock(in_ch, out_ch)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.conv_block(torch.cat((self.up(x), skip), 1))


class UNet(nn.Module):
    """U-Net of `depth` levels with 2**(5+i) channels at level i; H and W must be multiples of 2**(depth-1)."""

    def __init__(self, in_ch: int, out_ch: int, depth: int) -> None:
        super().__init__()
        widths = [2 ** (5 + i) for i in range(depth)]
        self.down_path = nn.ModuleList(_DownBlock(a, b) for a, b in zip([in_ch, *widths[:-1]], widths, strict=True))
        self.midconv = nn.Conv2d(widths[-1], widths[-1], 3, padding=1)
        self.up_path = nn.ModuleList(_UpBlock(widths[i + 1], widths[i]) for i in reversed(range(depth - 1)))
        self.last = nn.Conv2d(widths[0], out_ch, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for i, down in enumerate(self.down_path):
            x = down(x)
            if i < len(self.down_path) - 1:
                skips.append(x)
                x = F.avg_pool2d(x, 2)
        x = F.leaky_relu(self.midconv(x), 0.1)
        for up in self.up_path:
            x = up(x, skips.pop())
        return self.last(x)


def warp_zeros(image: Tensor, flow: Tensor, legacy_grid: bool, padding: str = "zeros") -> Tensor:
    """Backward-warp image by flow (pixels), bilinear, zeros (or the border, padding="border") outside; coordinates
    in float32.

    Exact: pixel x samples x + u. Legacy (the authors' grid): it samples (x + u) (W - 1) / W.
    """
    out_dtype = image.dtype
    work = torch.float32 if image.element_size() < 4 else out_dtype
    h, w = flow.shape[2:]
    xs = torch.arange(w, device=flow.device, dtype=work).view(1, 1, w)
    ys = torch.arange(h, device=flow.device, dtype=work).view(1, h, 1)
    span_x, span_y = (w, h) if legacy_grid else (max(w - 1, 1), max(h - 1, 1))
    gx = (xs + flow[:, 0].to(work)) * (2.0 / span_x) - 1.0
    gy = (ys + flow[:, 1].to(work)) * (2.0 / span_y) - 1.0
    grid = torch.stack((gx, gy), dim=3)
    out = F.grid_sample(image.to(work), grid, mode="bilinear", padding_mode=padding, align_corners=True)
    return out.to(out_dtype)


# Flow_L's five levels halve the size four times: each pyramid level needs its frames in multiples of this.
FLOW_NET_MULTIPLE = 16


# levels=0 (automatic): the levels for frames whose longer side is at most this many pixels, first match wins, else
# AUTO_LEVELS_LARGEST. Measured by benchmarks/studies/rrin_levels.py (the fewest dB lost to the best levels of each
# row, per width): 2 at 320 and 640 px, 3 at 1280 px; 4 is best only on the fastest synthetic scenes, so not automatic.
AUTO_LEVELS_RULE = ((900, 2),)
AUTO_LEVELS_LARGEST = 3


# Peak memory of one untiled pass (benchmarks/memory_rrin.py, CPU fp32): 975 B/px + 97 MiB in one pass, 1856 B/px +
# 127 MiB over three levels (each finer level runs Flow_L on both directions at once; full resolution dominates).
ONE_LEVEL_BYTES_PER_PIXEL = 1000.0
PYRAMID_BYTES_PER_PIXEL = 1900.0


def auto_flow_levels(width: int, height: int) -> int:
    """The coarse-to-fine levels levels=0 stands for with our weights, for frames of width x height."""
    side = max(width, height)
    return next((levels for limit, levels in AUTO_LEVELS_RULE if side <= limit), AUTO_LEVELS_LARGEST)


def pyramid_alignment(levels: int) -> int:
    """The size multiple of frames that Flow_L runs on coarse to fine over `levels` levels (and the others on)."""
    return max(32, FLOW_NET_MULTIPLE << (levels - 1))


def coarse_to_fine(flow_net: nn.Module, img0: Tensor, img1: Tensor, levels: int) -> list[Tensor]:
    """The bidirectional flows (N x 4: F0->1, F1->0, pixels) of `flow_net` applied coarse to fine, one per level,
    coarsest first; the last is at full resolution.

    The coarsest level sees both frames box-downscaled by 2^(levels-1). Each finer level upsamples the flows, warps
    frame 1 toward frame 0 by F0->1 and frame 0 toward frame 1 by F1->0 (exact grid, border padding), and adds the
    flows the net finds between each frame and the other's warped copy: the residual motion, which the coarse
    level has brought down to the sizes the net handles.
    """
    frames = [(img0, img1)]
    for _ in range(levels - 1):
        frames.append((F.avg_pool2d(frames[-1][0], 2), F.avg_pool2d(frames[-1][1], 2)))
    a, b = frames.pop()
    flows = [flow_net(torch.cat((a, b), 1))]
    n = img0.shape[0]
    for a, b in reversed(frames):
        flow = 2.0 * F.interpolate(flows[-1], scale_factor=2.0, mode="bilinear", align_corners=False)
        b_to_a = warp_zeros(b, flow[:, :2], False, "border")  # looks like frame a where F0->1 is right
        a_to_b = warp_zeros(a, flow[:, 2:], False, "border")
        residual = flow_net(torch.cat((torch.cat((a, b_to_a), 1), torch.cat((b, a_to_b), 1))))
        flows.append(flow + torch.cat((residual[:n, :2], residual[n:, :2]), 1))
    return flows


@dataclass
class RRINOutputs:
    """Everything one pass computes; training supervises more than the final frame."""

    flow_t0: Tensor  # flow from time t to frame 0, pixels
    flow_t1: Tensor  # flow from time t to frame 1
    blend: Tensor    # weighted blend of the two warped frames
    output: Tensor   # the filter's result: blend + image residue, clamped


class RRIN(InterpolationNet):
    memory_bytes_per_pixel = ONE_LEVEL_BYTES_PER_PIXEL
    supports_ensemble = False
    weight_roles: ClassVar[tuple[str, ...]] = ("model",)
    role_prefixes: ClassVar[dict[str, str]] = {"model": ""}
    key_aliases: ClassVar[dict[str, str]] = {"Flow.": "Flow_L."}  # the fork's name for the flow net
    legacy_grid: ClassVar[bool] = False
    # Flow_L runs coarse to fine over this many levels (1: the authors' single pass); the engine sets it.
    flow_levels: int = 1

    def __init__(self) -> None:
        super().__init__()
        self.Mask = UNet(16, 2, 4)
        self.Flow_L = UNet(6, 4, 5)
        self.refine_flow = UNet(10, 4, 4)
        self.final = UNet(9, 3, 4)

    def alignment(self, scale: float) -> int:
        return pyramid_alignment(self.flow_levels)

    def use_flow_levels(self, levels: int, width: int, height: int) -> None:
        self.flow_levels = levels or self.auto_flow_levels(width, height)
        self.memory_bytes_per_pixel = ONE_LEVEL_BYTES_PER_PIXEL if self.flow_levels == 1 else PYRAMID_BYTES_PER_PIXEL

    def auto_flow_levels(self, width: int, height: int) -> int:
        """What levels=0 stands for: our weights learned the pyramid (auto_flow_levels' rule)."""
        return auto_flow_levels(width, height)

    def estimate(self, img0: Tensor, img1: Tensor, t: Tensor | float) -> RRINOutputs:
        """One pass at time t (a float, or a tensor broadcastable to N x 1 x 1 x 1 for per-sample times)."""
        pair = torch.cat((img0, img1), 1)
        flow = coarse_to_fine(self.Flow_L, img0, img1, self.flow_levels)[-1]
        flow01, flow10 = flow[:, :2], flow[:, 2:4]
        # Super SloMo: intermediate flows from the two full flows under linear motion
        flow_t0 = -(1 - t) * t * flow01 + t * t * flow10
        flow_t1 = (1 - t) * (1 - t) * flow01 - t * (1 - t) * flow10
        residue = self.refine_flow(torch.cat((flow_t0, flow_t1, pair), 1))
        flow_t0 = flow_t0 + residue[:, :2]
        flow_t1 = flow_t1 + residue[:, 2:4]
        warped0 = warp_zeros(img0, flow_t0, self.legacy_grid)
        warped1 = warp_zeros(img1, flow_t1, self.legacy_grid)
        weights = torch.sigmoid(self.Mask(torch.cat((flow_t0, flow_t1, pair, warped0, warped1), 1)))
        weight0, weight1 = (1 - t) * weights[:, :1], t * weights[:, 1:2]
        blend = (weight0 * warped0 + weight1 * warped1) / (weight0 + weight1 + _BLEND_EPS)
        output = (self.final(torch.cat((img0, img1, blend), 1)) + blend).clamp(0, 1)
        return RRINOutputs(flow_t0, flow_t1, blend, output)

    def forward(self, img0: Tensor, img1: Tensor, timestep: float, scale: float, ensemble: bool) -> Tensor:
        return self.estimate(img0, img1, timestep).output


class RRINOfficial(RRIN):
    legacy_grid: ClassVar[bool] = True

    def auto_flow_levels(self, width: int, height: int) -> int:
        return 1  # the authors' single pass: their weights never saw the pyramid
