"""When a video's frames are shown, from the timestamps BestSource reads: a constant rate, a constant rate with
frames missing (an edit list, a dropped frame, damage), or a rate that really varies."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .rate import fraction_text

# Frame-time jitter up to this much (containers round timestamps to 1 ms) still counts as a constant rate.
TIMESTAMP_TOLERANCE_MS = 1.5
# Rates tried for a source's frame grid, and what a variable rate is snapped to when its average is near one.
COMMON_RATES = tuple(Fraction(n, d) for n, d in ((24000, 1001), (24, 1), (25, 1), (30000, 1001), (30, 1),
                                                  (48, 1), (50, 1), (60000, 1001), (60, 1), (120, 1)))
# A constant rate missing more than this share of its frames (where nothing is damaged) is a variable rate.
GAP_SHARE = 0.1
# Gaps a message lists before "and N more".
GAPS_NAMED = 3


@dataclass(frozen=True)
class Gap:
    """Frames missing from a constant rate: `frames` of them from `at_s` seconds after the first frame."""

    at_s: float
    frames: int

    def describe(self) -> str:
        return f"{self.frames} at {self.at_s:.2f} s"


@dataclass(frozen=True)
class Timing:
    """How the frames of a video are placed in time."""

    rate: Fraction  # the constant rate of its frames (with gaps: of the grid they sit on), or the one a variable
    # rate is converted to
    variable: bool = False  # frame durations really vary
    gaps: tuple[Gap, ...] = ()
    shortest_ms: float = 0.0
    longest_ms: float = 0.0
    start_ms: float = 0.0  # the first frame's timestamp
    converted: bool = False  # BestSource must be opened at `rate` (repeating or dropping frames)

    @property
    def missing(self) -> int:
        return sum(gap.frames for gap in self.gaps)

    def describe_missing(self) -> str:
        return f"{self.missing} frame{'s' * (self.missing != 1)}"

    def describe_gaps(self) -> str:
        named = ", ".join(gap.describe() for gap in self.gaps[:GAPS_NAMED])
        more = len(self.gaps) - GAPS_NAMED
        return named + (f" and {more} more gap{'s' * (more != 1)}" if more > 0 else "")

    def rate_text(self) -> str:
        return fraction_text(self.rate)


def _fit(stamps: Sequence[float], rate: Fraction) -> tuple[int, float] | None:
    """(frames missing, largest deviation in ms) when every timestamp sits on `rate`'s grid from the first one,
    each on its own slot; None when they do not."""
    times = np.asarray(stamps, dtype=np.float64)
    times -= times[0]
    step = 1000 / float(rate)
    slots = np.round(times / step)
    if np.any(np.diff(slots) <= 0):
        return None
    deviation = float(np.max(np.abs(times - slots * step)))
    return (int(slots[-1]) - len(stamps) + 1, deviation) if deviation <= TIMESTAMP_TOLERANCE_MS else None


def _gaps(stamps: Sequence[float], rate: Fraction) -> tuple[Gap, ...]:
    step = 1000 / float(rate)
    gaps = []
    for a, b in itertools.pairwise(stamps):
        skipped = round((b - a) / step) - 1
        if skipped > 0:
            gaps.append(Gap(at_s=(a + step - stamps[0]) / 1000, frames=skipped))
    return tuple(gaps)


def analyse(stamps: Sequence[float], reported: Fraction, damaged: bool = False) -> Timing:
    """The timing of frames shown at `stamps` (ms), which the container says come at `reported` fps (0: it does
    not say). The rate is the one whose grid holds every frame with the fewest missing, among the reported one,
    the common ones and the one the median frame duration gives (on a tie the reported one, then the one the
    timestamps sit closest to); a grid missing more than GAP_SHARE of its frames in an undamaged file, or none at
    all, makes the rate variable."""
    if len(stamps) < 2:
        return Timing(rate=reported if reported > 0 else Fraction(25), start_ms=stamps[0] if stamps else 0.0)
    steps = [b - a for a, b in itertools.pairwise(stamps)]
    shortest, longest = min(steps), max(steps)
    exact = _fit(stamps, reported) if reported > 0 else None
    if exact is not None and exact[0] == 0:  # the container's rate holds every frame: the common case, at once
        return Timing(rate=reported, shortest_ms=shortest, longest_ms=longest, start_ms=stamps[0])
    median = statistics.median(steps)
    candidates = ([reported] if reported > 0 else []) + list(COMMON_RATES)
    if median > 0:
        candidates.append(Fraction(1000 / median).limit_denominator(1001))
    fits = []
    for rate in candidates:
        fit = _fit(stamps, rate)
        if fit is not None:
            fits.append((fit[0], rate != reported, fit[1], rate))
    if fits:
        missing, _, _, rate = min(fits)
        if missing == 0 or damaged or missing <= GAP_SHARE * (len(stamps) + missing):
            return Timing(rate=rate, gaps=_gaps(stamps, rate), shortest_ms=shortest, longest_ms=longest,
                          start_ms=stamps[0], converted=missing > 0 or rate != reported)
    span = Fraction(stamps[-1] - stamps[0]).limit_denominator(1000)
    if span <= 0:  # every frame at one time: nothing says how long they last
        return Timing(rate=reported if reported > 0 else Fraction(25), variable=True, start_ms=stamps[0],
                      converted=True)
    average = Fraction(1000 * (len(stamps) - 1)) / span
    nearest = min(COMMON_RATES, key=lambda rate: abs(average / rate - 1))
    rate = nearest if abs(average / nearest - 1) < 0.01 else average.limit_denominator(1001)
    return Timing(rate=rate, variable=True, shortest_ms=shortest, longest_ms=longest, start_ms=stamps[0],
                  converted=True)
