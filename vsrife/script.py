"""The VapourSynth script behind `python -m vsrife interpolate`: written as text, so `script` can print it.

`interpolate` runs exactly the text that `script` prints (as vspipe runs a .vpy), so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import vapoursynth as vs

from . import parameters
from .registry import METHODS


@dataclass(frozen=True)
class GraphSpec:
    """One interpolation graph: source, optional cut and rate conversion, the vfi filter, optional montage."""

    input: Path
    method: str  # a key of registry.METHODS
    rate: dict[str, int]  # {"multi": n}, {"factor_num": a, "factor_den": b} or {"fps_num": a, "fps_den": b}
    factor: Fraction  # output rate / source rate, for the montage's held frames
    filter_args: dict[str, Any] = field(default_factory=dict)  # the other filter parameters given (PARAMETERS)
    start: int | None = None
    end: int | None = None  # the last source frame, inclusive (as vspipe's --end)
    constant_fps: Fraction | None = None  # place the frames at this constant rate first (a variable rate, gaps)
    rgb_source: bool = False  # YUV4MPEG carries no RGB: convert the result to YUV 4:4:4
    montage: bool = False
    image_rate: Fraction | None = None  # `input` is a folder of numbered images shown at this rate
    decoder_threads: int | None = None  # BestSource's decoder threads (1 reads more of some damaged files)
    deinterlace: int | None = None  # bwdif's field argument: 2 bottom field first, 3 top field first (field rate)


def _source_lines(spec: GraphSpec) -> list[str]:
    """Script lines that import VapourSynth and define `source`: the input, at a constant rate, cut to the range,
    deinterlaced."""
    lines = ["import vapoursynth as vs"]
    if spec.image_rate is not None:
        lines += ["", "from vsrife.frames import image_sequence", "", "core = vs.core",
                  f"source = image_sequence({str(spec.input.resolve())!r}, fpsnum={spec.image_rate.numerator}, "
                  f"fpsden={spec.image_rate.denominator})  # the numbered images in natural order"]
    else:
        source_args = [repr(str(spec.input.resolve()))]
        if spec.constant_fps is not None:
            source_args += [f"fpsnum={spec.constant_fps.numerator}", f"fpsden={spec.constant_fps.denominator}"]
        if spec.decoder_threads is not None:
            source_args.append(f"threads={spec.decoder_threads}")
        comments = ["its frames at a constant rate"] if spec.constant_fps is not None else []
        comments += ["one decoder thread reads every frame that decodes"] if spec.decoder_threads else []
        lines += ["", "core = vs.core",
                  f"source = core.bs.VideoSource({', '.join(source_args)})"
                  + (f"  # {'; '.join(comments)}" if comments else "")]
    if spec.start is not None or spec.end is not None:
        first = "" if spec.start is None else str(spec.start)
        last = "" if spec.end is None else str(spec.end + 1)
        lines.append(f"source = source[{first}:{last}]")
    if spec.deinterlace is not None:
        lines.append(f"source = core.bwdif.Bwdif(source, field={spec.deinterlace})  # one frame per field")
    return lines


def source_text(spec: GraphSpec) -> str:
    """A .vpy whose output is the source part of `spec`'s graph alone (what the vfi filter receives)."""
    return "\n".join([*_source_lines(spec), "source.set_output()"]) + "\n"


def script_text(spec: GraphSpec) -> str:
    """A self-contained .vpy for `spec`."""
    lines = [
        "# Written by `python -m vsrife script`. Render: vspipe -c y4m THIS.vpy - | ffmpeg -i - OUTPUT",
        *_source_lines(spec),
    ]
    given = {**spec.rate, **spec.filter_args}
    arguments = {name: parameters.PARAMETERS[name].script_argument(value) for name, value in given.items()}
    lines += [line for argument in arguments.values() for line in argument.setup]
    call_args = ["source", *(f"{name}={argument.expression}" for name, argument in arguments.items())]
    lines.append(f"clip = core.vfi.{METHODS[spec.method].filter}({', '.join(call_args)})")
    if spec.montage:
        held = f"core.std.Interleave([source] * {spec.factor.numerator})"
        if spec.factor.denominator > 1:
            held += f".std.SelectEvery(cycle={spec.factor.denominator}, offsets=0)"
        lines += [
            "# The source beside the result, each source frame held for as long as it lasts",
            f"held = {held}",
            "clip = core.std.StackHorizontal([held[:clip.num_frames], clip])",
        ]
    if spec.rgb_source:
        lines += [
            "# YUV4MPEG carries no RGB",
            "clip = core.resize.Bicubic(clip, format=clip.format.replace(color_family=vs.YUV, subsampling_w=0, "
            "subsampling_h=0), matrix_s='709')",
        ]
    lines.append("clip.set_output()")
    return "\n".join(lines) + "\n"


def run_script(text: str, filename: str = "<vsrife script>") -> vs.VideoNode:
    """Evaluate a script as vspipe would and return its output 0."""
    vs.clear_outputs()
    try:
        exec(compile(text, filename, "exec"), {"__name__": "__vapoursynth__"})
        output = vs.get_outputs().get(0)
    finally:
        vs.clear_outputs()
    if not isinstance(output, vs.VideoOutputTuple):
        raise vs.Error(f"{filename} sets no video output 0")
    return output.clip
