"""The flow stage's loss and scores: Flow_L (coarse to fine over the configured levels) against known flows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.rrin import coarse_to_fine, pyramid_alignment
from .data import FlowPair

# End-point error is reported per range of true motion (pixels): small, medium and the large motion of the gate.
MOTION_RANGES = ((0.0, 4.0), (4.0, 16.0), (16.0, 48.0), (48.0, math.inf))


def masked_l1(prediction: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """Mean absolute flow error (pixels, per component) over the valid pixels of each flow (valid: N x 2 x H x W)."""
    weight = valid.repeat_interleave(2, dim=1).to(prediction.dtype)
    return ((prediction - target).abs() * weight).sum() / weight.sum().clamp(min=1)


def downscaled_target(flow: Tensor, valid: Tensor, factor: int) -> tuple[Tensor, Tensor]:
    """Flows and validity at 1/factor of the size: the mean flow of each block in its pixels, valid where every
    pixel of the block is."""
    if factor == 1:
        return flow, valid
    coarse_valid = -F.max_pool2d(-valid.float(), factor) > 0.5
    return F.avg_pool2d(flow, factor) / factor, coarse_valid


def pyramid_flow_loss(estimates: Sequence[Tensor], flow: Tensor, valid: Tensor) -> dict[str, Tensor]:
    """masked_l1 of the full-resolution estimate ("flow") and the sum over the coarser levels' estimates, each
    against the target downscaled to its size, in its own pixels ("coarse", only with more than one level)."""
    terms = {"flow": masked_l1(estimates[-1].float(), flow, valid)}
    coarser = estimates[:-1]
    if coarser:
        total = torch.zeros((), device=flow.device)
        for level, estimate in enumerate(coarser):
            target, target_valid = downscaled_target(flow, valid, 2 ** (len(coarser) - level))
            total = total + masked_l1(estimate.float(), target, target_valid)
        terms["coarse"] = total
    return terms


@dataclass
class FlowScores:
    """End-point errors (pixels) of the flow net and of zero flow on the validation pairs, per motion range."""

    epe: float
    zero_epe: float
    ranges: list[tuple[float, float, float, int]]  # (model EPE, zero-flow EPE, share of pixels, pixels) per range

    def describe(self) -> str:
        parts = [f"epe {self.epe:.3f} (zero flow {self.zero_epe:.3f})"]
        for (low, high), (model, zero, _, pixels) in zip(MOTION_RANGES, self.ranges, strict=True):
            if pixels:
                name = f"{low:g}-{high:g}" if math.isfinite(high) else f"{low:g}+"
                parts.append(f"{name}px {model:.3f} ({zero:.3f}, {pixels} px)")
        return " ".join(parts)


def flow_scores(net: nn.Module, pairs: Sequence[FlowPair], levels: int = 1) -> FlowScores:
    """End-point errors of `net` (RRIN's Flow_L, coarse to fine over `levels`) on whole validation pairs padded by
    border replication to the size multiple those levels need."""
    align = pyramid_alignment(levels)
    errors, norms = [], []
    with torch.no_grad():
        for pair in pairs:
            height, width = pair.img0.shape[1:]
            pad = (0, -width % align, 0, -height % align)
            img0, img1 = (F.pad(image.unsqueeze(0), pad, mode="replicate") for image in (pair.img0, pair.img1))
            predicted = coarse_to_fine(net, img0, img1, levels)[-1][0, :, :height, :width].float()
            for channels, valid in ((slice(0, 2), pair.valid[0]), (slice(2, 4), pair.valid[1])):
                errors.append((predicted[channels] - pair.flow[channels]).norm(dim=0)[valid])
                norms.append(pair.flow[channels].norm(dim=0)[valid])
    error, norm = torch.cat(errors).double(), torch.cat(norms).double()
    ranges = []
    for low, high in MOTION_RANGES:
        inside = (norm >= low) & (norm < high)
        count = int(inside.sum())
        ranges.append((float(error[inside].mean()) if count else math.nan,
                       float(norm[inside].mean()) if count else math.nan, count / max(1, norm.numel()), count))
    return FlowScores(float(error.mean()), float(norm.mean()), ranges)
