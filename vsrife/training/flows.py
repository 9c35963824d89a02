"""The flow stage's targets on real frames: a teacher's bidirectional flows between whole frames, checked for
forward-backward consistency and cached on disk (each pair is computed once per run folder).

The flows between frames a and b = a + k come from the frames around them: a is the midpoint of a - k and b, so
RIFE's flow from the midpoint of those two to b is F_a->b; likewise b is the midpoint of a and b + k.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .data import FrameSequence

# Forward-backward check (Sundaram et al.): a flow is kept where following it and then the flow back returns within
# this fraction of the squared motion plus CONSISTENCY_PIXELS squared pixels; elsewhere it is occluded or wrong.
CONSISTENCY_FRACTION = 0.01
CONSISTENCY_PIXELS = 0.5


def middle_flows(teacher: nn.Module, before: Tensor, after: Tensor) -> Tensor:
    """RIFE-style `teacher`'s flows from the midpoint of two frames to each of them (N x 4: to `before`, to
    `after`, pixels), on the frames padded by border replication to its size multiple.

    When a real frame lies halfway, these are its own flows to its neighbours: RIFE at t = 0.5, its trained use.
    (Asked at t = 0 for the flow from a frame to the other, RIFE 4.0 is worse than no flow on bikes.mp4.)
    """
    align = teacher.alignment(1.0)  # type: ignore[operator]
    height, width = before.shape[2:]
    pad = (0, -width % align, 0, -height % align)
    with torch.no_grad():
        flow = teacher.estimate(F.pad(before, pad, mode="replicate"), F.pad(after, pad, mode="replicate"),  # type: ignore[operator]
                                0.5, 1.0, False)[0]
    return flow[:, :, :height, :width].float()


def _sample(field: Tensor, flow: Tensor) -> tuple[Tensor, Tensor]:
    """field (N x C x H x W) read at x + flow bilinearly, and where x + flow lies inside the frame."""
    h, w = flow.shape[2:]
    xs = torch.arange(w, dtype=flow.dtype).view(1, 1, w) + flow[:, 0]
    ys = torch.arange(h, dtype=flow.dtype).view(1, h, 1) + flow[:, 1]
    inside = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
    grid = torch.stack((xs * (2.0 / max(w - 1, 1)) - 1.0, ys * (2.0 / max(h - 1, 1)) - 1.0), dim=3)
    return F.grid_sample(field, grid, mode="bilinear", padding_mode="border", align_corners=True), inside


def consistent(flow: Tensor) -> Tensor:
    """N x 2 bool: where F0->1 and F1->0 (flow's channels 0:2 and 2:4) pass the forward-backward check."""
    masks = []
    for there, back in ((flow[:, 0:2], flow[:, 2:4]), (flow[:, 2:4], flow[:, 0:2])):
        returned, inside = _sample(back, there)
        error = (there + returned).square().sum(1)
        bound = CONSISTENCY_FRACTION * (there.square().sum(1) + returned.square().sum(1)) + CONSISTENCY_PIXELS
        masks.append(inside & (error <= bound))
    return torch.stack(masks, 1)


class TeacherFlows:
    """PairFlows from a RIFE teacher, cached as files under `folder` (fp16 flows, bool masks)."""

    def __init__(self, teacher: nn.Module, folder: Path) -> None:
        self.teacher = teacher
        self.folder = folder
        self._keys: dict[int, str] = {}

    def _key(self, source: FrameSequence) -> str:
        """A name for the source's frames: their content, so a changed spec or file never reuses stale flows."""
        if id(source) not in self._keys:
            digest = hashlib.sha256(source.frames.numpy().tobytes()).hexdigest()[:16]
            self._keys[id(source)] = digest
        return self._keys[id(source)]

    def flows(self, source: FrameSequence, first: int, last: int) -> tuple[Tensor, Tensor]:
        path = self.folder / self._key(source) / f"{first}-{last}.pt"
        if path.is_file():
            saved = torch.load(path, map_location="cpu", weights_only=True)
            return saved["flow"].float(), saved["valid"]
        span = last - first
        before, img0, img1, after = (source.frames[i : i + 1].float() / 255
                                     for i in (first - span, first, last, last + span))
        flow = torch.cat((middle_flows(self.teacher, before, img1)[:, 2:4],
                          middle_flows(self.teacher, img0, after)[:, 0:2]), 1)
        valid = consistent(flow)[0]
        flow = flow[0].half()  # what is cached is what is used, also in the run that computed it
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.part")
        torch.save({"flow": flow, "valid": valid}, partial)
        os.replace(partial, path)
        return flow.float(), valid
