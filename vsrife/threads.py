"""How many torch threads render: `--threads N`, checked and set before the first frame."""

from __future__ import annotations

from .errors import MediaError


def check_threads(threads: int | None) -> None:
    """A MediaError for a thread count below 1."""
    if threads is not None and threads < 1:
        raise MediaError(f"--threads {threads}: it must be at least 1")


def pin_threads(threads: int | None) -> None:
    """Make this process render with `threads` torch threads (None: torch's default, one per core). Call it before
    the first frame: VapourSynth's threads take the count when they first run torch."""
    check_threads(threads)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
