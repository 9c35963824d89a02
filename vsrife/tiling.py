"""Tiled interpolation ("forward chopping") for frames whose single pass does not fit in memory.

Any model works: the caller passes `synthesize(tile0, tile1) -> tile`, the net with its timestep, scale and
ensemble already bound. The frame is cut into overlapping tiles of at most `tile` x `tile` pixels; each tile goes
through one call and the results are blended with feathered weights.

Layout, per axis: a frame no longer than `tile` is one span; otherwise n = ceil((size - overlap) / (tile - overlap))
equal spans are spread evenly from edge to edge, each the shortest multiple of `align` (at most `tile`) that keeps
every overlap at least `overlap` pixels: no tile needs padding when `tile` is a multiple of `align`, and no pass
computes more rows or columns than the overlaps need.

Blend, per axis: between spans i and i+1 a linear ramp is centred in their overlap and spans all of it, so each
side's weight reaches 0 at its tile edge, where the net saw the least context. Where the spans are so dense that a
third one reaches into the overlap (short frames, large overlap), the ramps are narrowed to stay disjoint. Disjoint
ramps make the 1-D weights a partition of unity, and the 2-D weight of a tile (outer product of its row and column
weights) is then one as well: the output needs no weight accumulator and no normalisation.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

# choose_tile plans a pass to use at most this fraction of the available memory: the rest covers allocator
# rounding and fragmentation, and tensors the caller holds outside the pass (frames, the model's weights).
MEMORY_SAFETY_FRACTION = 0.75

# The output accumulator of a tiled pass, per frame pixel: 3 channels of float32.
ACCUMULATOR_BYTES_PER_PIXEL = 3 * 4

Span = tuple[int, int]


def interpolate_tiled(synthesize: Callable[[Tensor, Tensor], Tensor], img0: Tensor, img1: Tensor, *,
                      tile: int, overlap: int, align: int) -> Tensor:
    """synthesize(img0, img1) over overlapping tiles of at most tile x tile, blended; returns 1 x 3 x H x W.

    img0/img1: 1 x 3 x H x W, unpadded. Each tile is padded by repeating its border to a multiple of `align`
    before the call and cropped after it. A frame no larger than one tile goes through a single call. Frames of
    one size are cut the same way and their tiles visited in the same order (row by row), one call each, so a
    caller may key what it keeps per tile by the call's number. Memory: a float32 output accumulator of the
    frame's size plus one tile's intermediate tensors.
    """
    _check_arguments(img0, img1, tile=tile, overlap=overlap, align=align)
    height, width = img0.shape[2], img0.shape[3]
    if height <= tile and width <= tile:
        return _synthesize_padded(synthesize, img0, img1, align)
    rows = tile_spans(height, tile, overlap, align)
    cols = tile_spans(width, tile, overlap, align)
    row_weights = blend_weights(rows, height, device=img0.device)
    col_weights = blend_weights(cols, width, device=img0.device)
    # float32 whatever the input dtype: up to four weighted terms per pixel, bf16 would round each of them
    out = torch.zeros((1, 3, height, width), dtype=torch.float32, device=img0.device)
    for (top, bottom), row_weight in zip(rows, row_weights, strict=True):
        for (left, right), col_weight in zip(cols, col_weights, strict=True):
            part = _synthesize_padded(synthesize, img0[:, :, top:bottom, left:right],
                                      img1[:, :, top:bottom, left:right], align)
            weight = row_weight.view(-1, 1) * col_weight.view(1, -1)
            out[:, :, top:bottom, left:right].addcmul_(part.to(torch.float32), weight)
            del part, weight  # free this tile's tensors before the next tile allocates its own
    return out if img0.dtype == torch.float32 else out.to(img0.dtype)


def tile_spans(size: int, tile: int, overlap: int, align: int = 1) -> list[Span]:
    """[start, end) of each tile along an axis of `size` pixels: one span, or equal spans spread evenly.

    The count is the fewest spans of `tile` that overlap by `overlap`; their length is then the smallest multiple
    of `align` (at most `tile`) that still gives every overlap at least `overlap` pixels.
    """
    if size <= tile:
        return [(0, size)]
    count = math.ceil((size - overlap) / (tile - overlap))
    length = min(tile, -(-math.ceil((size + (count - 1) * overlap) / count) // align) * align)
    step = (size - length) / (count - 1)
    return [(round(i * step), round(i * step) + length) for i in range(count)]


def blend_weights(spans: list[Span], size: int, *, device: torch.device | str = "cpu") -> list[Tensor]:
    """Per span, a float32 weight for each of its pixels; at every pixel of [0, size) the weights sum to 1."""
    # ramp i: centre and half-width, between span i and span i+1 (pixel coordinates, pixel x covers [x, x+1))
    centres = [(spans[i + 1][0] + spans[i][1]) / 2 for i in range(len(spans) - 1)]
    halves = []
    for i, centre in enumerate(centres):
        width: float = spans[i][1] - spans[i + 1][0]
        if i > 0:
            width = min(width, centre - centres[i - 1])  # stay clear of the previous ramp
        if i + 1 < len(centres):
            width = min(width, centres[i + 1] - centre)  # and of the next one
        halves.append(max(width, 0) / 2)
    weights = []
    for i, (start, end) in enumerate(spans):
        x = torch.arange(start, end, dtype=torch.float64, device=device) + 0.5  # pixel centres
        weight = torch.ones_like(x)
        if i > 0:
            weight = weight * _ramp(x, centres[i - 1], halves[i - 1])
        if i + 1 < len(spans):
            weight = weight * (1 - _ramp(x, centres[i], halves[i]))
        weights.append(weight.to(torch.float32))
    if spans[0][0] != 0 or spans[-1][1] != size:
        raise ValueError(f"spans {spans} do not cover [0, {size})")
    return weights


def _ramp(x: Tensor, centre: float, half: float) -> Tensor:
    """0 before the ramp, 1 after it, linear across [centre - half, centre + half]; a step when half is 0."""
    if half == 0:
        return (x > centre).to(x.dtype)
    return ((x - (centre - half)) / (2 * half)).clamp(0, 1)


def _synthesize_padded(synthesize: Callable[[Tensor, Tensor], Tensor], img0: Tensor, img1: Tensor,
                       align: int) -> Tensor:
    height, width = img0.shape[2], img0.shape[3]
    bottom, right = -height % align, -width % align
    if bottom or right:
        img0 = F.pad(img0, (0, right, 0, bottom), mode="replicate")
        img1 = F.pad(img1, (0, right, 0, bottom), mode="replicate")
    else:
        # a tile is a strided view into the frame; convolutions run faster on a dense copy
        img0, img1 = img0.contiguous(), img1.contiguous()
    result = synthesize(img0, img1)
    if result.shape != img0.shape:
        raise ValueError(f"synthesize returned shape {tuple(result.shape)} for input {tuple(img0.shape)}")
    return result[:, :, :height, :width]


def _check_arguments(img0: Tensor, img1: Tensor, *, tile: int, overlap: int, align: int) -> None:
    if img0.dim() != 4 or img0.shape[:2] != (1, 3) or img0.shape != img1.shape:
        raise ValueError(f"expected two 1 x 3 x H x W frames, got {tuple(img0.shape)} and {tuple(img1.shape)}")
    if align < 1:
        raise ValueError(f"align must be positive, got {align}")
    if overlap < 0 or tile <= overlap:
        raise ValueError(f"need 0 <= overlap < tile, got tile={tile}, overlap={overlap}")


def minimum_tile(overlap: int, align: int) -> int:
    """The smallest tile choose_tile returns: a multiple of align, at least 2 * overlap + align."""
    return -(-(2 * overlap + align) // align) * align


def choose_tile(height: int, width: int, *, bytes_per_pixel: float, available_bytes: int, overlap: int,
                align: int) -> int:
    """0 if the untiled pass fits in memory, else the largest tile (multiple of align) whose pass fits.

    A pass over a padded H x W image is assumed to need bytes_per_pixel * H * W bytes; subtract any constant cost
    (weights, frames) from available_bytes first. Only MEMORY_SAFETY_FRACTION of available_bytes is planned for.
    A tiled pass also holds the float32 output accumulator (and its cast to the frame's dtype), so that much is
    taken off the budget before the tile is sized. When not even minimum_tile fits, minimum_tile is returned.
    """
    budget = available_bytes * MEMORY_SAFETY_FRACTION
    padded = (-(-height // align) * align) * (-(-width // align) * align)
    if padded * bytes_per_pixel <= budget:
        return 0
    budget -= 2 * ACCUMULATOR_BYTES_PER_PIXEL * height * width
    smallest = minimum_tile(overlap, align)
    side = math.isqrt(int(max(budget, 0) / bytes_per_pixel)) // align * align
    return max(side, smallest)


def available_memory(device: torch.device) -> int:
    """Bytes one pass may use on `device`: free device memory (plus torch's cached blocks) or free host RAM."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        # blocks the caching allocator holds but no tensor uses count as free for our next pass
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + cached)
    mps = getattr(torch, "mps", None)
    if device.type == "mps" and mps is not None and hasattr(mps, "recommended_max_memory"):
        # unified memory: Metal's recommended working set minus what the driver has already handed out
        return max(int(mps.recommended_max_memory() - mps.driver_allocated_memory()), 0)
    backend = getattr(torch, device.type, None)
    if device.type != "cpu" and backend is not None and hasattr(backend, "mem_get_info"):
        free, _total = backend.mem_get_info(device)
        return int(free)
    return host_available_memory()


def host_available_memory() -> int:
    """MemAvailable of /proc/meminfo, capped by the cgroup's remaining limit; sysconf where /proc is missing."""
    available = _meminfo_available()
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            available = 0
    limit = _cgroup_remaining()
    return available if limit is None else min(available, limit)


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the file counts kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_remaining() -> int | None:
    """Limit minus usage of this process's memory cgroup (v2, then v1); None when unlimited or unknown."""
    v2, v1 = Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/memory")
    candidates = [(v2 / "memory.max", v2 / "memory.current", v2 / "memory.stat", "inactive_file"),
                  (v1 / "memory.limit_in_bytes", v1 / "memory.usage_in_bytes", v1 / "memory.stat",
                   "total_inactive_file")]
    for limit_path, usage_path, stat_path, reclaimable_key in candidates:
        try:
            limit_text = limit_path.read_text().strip()
            usage = int(usage_path.read_text().strip())
        except (OSError, ValueError):
            continue
        if limit_text == "max" or int(limit_text) >= 1 << 60:  # v1 reports "unlimited" as a huge number
            return None
        # usage counts the page cache; its inactive part is reclaimed before the cgroup runs out
        usage -= _stat_value(stat_path, reclaimable_key)
        return max(int(limit_text) - usage, 0)
    return None


def _stat_value(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


__all__ = [
    "MEMORY_SAFETY_FRACTION",
    "available_memory",
    "blend_weights",
    "choose_tile",
    "host_available_memory",
    "interpolate_tiled",
    "minimum_tile",
    "tile_spans",
]
