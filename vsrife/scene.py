"""The scene-change metric: one function for the filter (`sc=1`), the cluster planner (chunk boundaries on cuts)
and the trainer (no triplet across a cut), compared with the filter's `sc_threshold` (vsrife/parameters.py); and
the held-frame difference of `dedup`, the same measure compared with `dedup_threshold`."""

from __future__ import annotations

import torch
import torch.nn.functional as F

# The metric is measured on frames shrunk by this factor in each direction.
SCENE_METRIC_DOWNSCALE = 4


def scene_change_metric(img0: torch.Tensor, img1: torch.Tensor) -> float:
    """Mean absolute difference of the RGB samples (0..1) of the two frames (1 x 3 x H x W) at quarter resolution."""
    small0 = F.avg_pool2d(img0.float(), SCENE_METRIC_DOWNSCALE, ceil_mode=True)
    small1 = F.avg_pool2d(img1.float(), SCENE_METRIC_DOWNSCALE, ceil_mode=True)
    return float((small0 - small1).abs().mean())


def repeat_difference(img0: torch.Tensor, img1: torch.Tensor) -> float:
    """How far img1 is from being a repeat of img0 (dedup, compared with `dedup_threshold`): the scene-change
    metric's mean absolute difference at quarter resolution. Of the measures benchmarks/dedup.py compared, it kept
    x264's noise on held frames furthest below slow real motion (1.7x on bikes.mp4)."""
    return scene_change_metric(img0, img1)
