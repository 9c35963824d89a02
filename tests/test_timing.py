"""The timing of a source's frames (vsrife.timing) and its timecode (vsrife.timecode), from timestamps and labels
as containers store them: no video needed."""

from __future__ import annotations

from fractions import Fraction

import pytest

from vsrife.timecode import Timecode
from vsrife.timing import analyse


def stamps(rate: Fraction, count: int, *, skip: tuple[int, ...] = (), milliseconds: bool = False) -> list[float]:
    """Frame times in ms at `rate`, frames `skip` left out; rounded to whole ms as Matroska stores them."""
    times = [float(1000 * n / rate) for n in range(count) if n not in skip]
    return [round(t) for t in times] if milliseconds else [round(t, 2) for t in times]


@pytest.mark.parametrize("rate", [Fraction(25), Fraction(30000, 1001), Fraction(30), Fraction(60000, 1001)])
@pytest.mark.parametrize("milliseconds", [False, True])
def test_a_constant_rate_is_its_exact_rate(rate: Fraction, milliseconds: bool) -> None:
    timing = analyse(stamps(rate, 300, milliseconds=milliseconds), rate)
    assert (timing.rate, timing.variable, timing.gaps, timing.converted) == (rate, False, (), False)


def test_gaps_keep_the_rate_and_say_where() -> None:
    timing = analyse(stamps(Fraction(30), 30, skip=(10,)), Fraction(29))  # the container's average is off
    assert timing.rate == 30 and not timing.variable and timing.converted
    assert timing.describe_gaps() == "1 at 0.33 s" and timing.missing == 1
    many = analyse(stamps(Fraction(25), 60, skip=(30, 31, 32, 40, 50, 55)), Fraction(25))
    assert many.rate == 25 and many.missing == 6
    assert many.describe_gaps() == "3 at 1.20 s, 1 at 1.60 s, 1 at 2.00 s and 1 more gap"


def test_durations_that_really_vary_are_a_variable_rate() -> None:
    mixed = [40.0 * n for n in range(11)] + [400.0 + 20 * n for n in range(1, 10)]  # 25 fps, then 50 fps
    timing = analyse(mixed, Fraction(0))
    assert timing.variable and timing.converted and (timing.shortest_ms, timing.longest_ms) == (20.0, 40.0)
    jitter = [33.4 * n + (1.9 if n % 3 else 0.0) for n in range(100)]  # a phone's timestamps
    assert analyse(jitter, Fraction(30)).variable
    # as many frames missing as there are (undamaged): a rate that changes, unless the file is damaged
    halves = stamps(Fraction(50), 40, skip=tuple(range(1, 40, 2))[:12])
    assert analyse(halves, Fraction(50)).variable and not analyse(halves, Fraction(50), damaged=True).variable


NTSC = Fraction(30000, 1001)


@pytest.mark.parametrize("label,fps,frames", [("01:00:00:00", Fraction(25), 90000), ("00:01:00;02", NTSC, 1800),
                                               ("00:10:00;00", NTSC, 17982), ("10:00:00:12", Fraction(24), 864012)])
def test_timecode_labels_count_frames(label: str, fps: Fraction, frames: int) -> None:
    timecode = Timecode.parse(label, fps)
    assert timecode is not None and timecode.frames == frames and timecode.label() == label


def test_timecode_follows_a_cut_and_a_new_rate() -> None:
    start = Timecode.parse("01:00:00:00", Fraction(25))
    assert start is not None
    assert start.carried(5, Fraction(50)) == (Timecode(180010, 50, False), True)
    assert start.carried(5, Fraction(50))[0].label() == "01:00:00:10"
    drop = Timecode.parse("00:00:59;29", NTSC)
    assert drop is not None and drop.carried(1, Fraction(60000, 1001))[0].label() == "00:01:00;04"
    uneven, exact = start.carried(1, Fraction(60000, 1001))  # 2.4 frames at 60 per frame at 25
    assert not exact and uneven.label() == "01:00:00:02"
    assert Timecode.parse("not a timecode", Fraction(25)) is None
