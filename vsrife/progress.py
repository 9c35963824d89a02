"""The command line's progress bar: frames (or images) done of the total, items per second and ETA, on stderr."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(total: int, enabled: bool, *, unit: str = "frame",
                 description: str | None = None) -> Iterator[Callable[[int, int], None]]:
    """A tqdm bar on stderr (done/total, items per second, ETA) and the callback that moves it."""
    from tqdm import tqdm

    with tqdm(total=total, unit=unit, desc=description, disable=not enabled, file=sys.stderr, dynamic_ncols=True,
              smoothing=0.1) as bar:
        def update(done: int, _total: int) -> None:
            bar.update(done - bar.n)

        yield update
