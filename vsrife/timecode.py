"""SMPTE timecodes (HH:MM:SS:FF; HH:MM:SS;FF drop-frame) of a source, carried to the output's first frame and rate.

A timecode counts frames at the rate rounded to an integer; drop-frame timecodes of 30000/1001 and 60000/1001 fps
skip 2 or 4 labels each minute but every tenth, to stay near the clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

_TIMECODE = re.compile(r"^(\d+):(\d\d):(\d\d)([:;.,])(\d+)$")


@dataclass(frozen=True)
class Timecode:
    """A timecode as a frame count at an integer rate."""

    frames: int
    rate: int  # frames per timecode second
    drop: bool  # drop-frame labels

    @property
    def dropped_per_minute(self) -> int:
        return self.rate // 15 if self.drop else 0

    @classmethod
    def parse(cls, text: str, fps: Fraction) -> Timecode | None:
        """The timecode `text` of frames at `fps`; None when it is not one."""
        found = _TIMECODE.match(text.strip())
        rate = round(fps)
        if found is None or rate <= 0:
            return None
        hours, minutes, seconds, separator, frame = found.groups()
        drop = separator in ";," and rate % 30 == 0
        timecode = cls(0, rate, drop)
        minutes_in_all = int(hours) * 60 + int(minutes)
        frames = (minutes_in_all * 60 + int(seconds)) * rate + int(frame)
        frames -= timecode.dropped_per_minute * (minutes_in_all - minutes_in_all // 10)
        return cls(frames, rate, drop)

    def label(self) -> str:
        frames, dropped = self.frames, self.dropped_per_minute
        if dropped:  # add back the labels that drop-frame skips
            per_ten = self.rate * 600 - dropped * 9
            tens, rest = divmod(frames, per_ten)
            frames += dropped * 9 * tens + (dropped * ((rest - dropped) // (self.rate * 60 - dropped))
                                            if rest > dropped else 0)
        seconds, frame = divmod(frames, self.rate)
        separator = ";" if self.drop else ":"
        return f"{seconds // 3600 % 24:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}{separator}{frame:02d}"

    def carried(self, skipped: int, fps: Fraction) -> tuple[Timecode, bool]:
        """The timecode `skipped` frames later, counted at `fps` instead; and whether that is a whole frame there
        (False: it is rounded down)."""
        rate = round(fps)
        frames = Fraction(self.frames + skipped) * rate / self.rate
        drop = self.drop and fps.denominator == 1001 and rate % 30 == 0
        return Timecode(int(frames), rate, drop), frames.denominator == 1
