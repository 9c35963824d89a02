"""The plugin's rate arithmetic (plugin/rate.h) asked of the plugin itself, through ``core.vfi.Rate``: the output
length and rate, and the reduced factor num/den (output frame n sits at source position n * den / num)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

import vapoursynth as vs


@dataclass(frozen=True)
class OutputRate:
    """What a filter makes of a clip with given rate arguments."""

    factor: Fraction  # output rate / source rate, num/den as the plugin reduces it
    frames: int  # output frames
    fps: Fraction | None  # the output frame rate; None for a variable-rate clip


def output_rate(frames: int, fps: Fraction, rate_arguments: Mapping[str, int]) -> OutputRate:
    """The answer of ``core.vfi.Rate`` for a clip of ``frames`` frames at ``fps`` (0 for a variable rate);
    ``vapoursynth.Error`` with the plugin's message ("vfi.Rate: ...") for arguments it refuses."""
    clip = vs.core.std.BlankClip(width=16, height=16, length=frames, fpsnum=fps.numerator, fpsden=fps.denominator)
    answer = vs.core.vfi.Rate(clip, **rate_arguments)
    return OutputRate(factor=Fraction(answer["num"], answer["den"]), frames=answer["frames"],
                      fps=Fraction(answer["fps_num"], answer["fps_den"]) if answer["fps_num"] > 0 else None)


def fraction_text(value: Fraction) -> str:
    """A rate or factor as the command line writes it: 25, 24000/1001."""
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
