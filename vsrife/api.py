"""Typed Python functions for the plugin's filters: ``vsrife.RIFE(clip, ...)`` is ``core.vfi.RIFE(clip, ...)``.

They take exactly the plugin's parameters (tests/test_api.py compares them with the live plugin's signature) and
pass on only the ones that are not None, so the plugin's own defaults and error messages apply unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import vapoursynth as vs

__all__ = ["RIFE", "RRIN", "PathArgument"]

# What a file-path argument accepts: VapourSynth's data type (str, bytes) plus os.PathLike such as pathlib.Path.
type PathArgument = str | bytes | os.PathLike[str] | os.PathLike[bytes]


def plugin_arguments(arguments: Mapping[str, object]) -> dict[str, object]:
    """What the plugin is called with: the arguments that are not None (falsy ones such as 0 included), with
    os.PathLike values as str or bytes (VapourSynth's data type takes no Path)."""
    return {key: os.fspath(value) if isinstance(value, os.PathLike) else value
            for key, value in arguments.items() if value is not None}


def _call_filter(name: str, clip: vs.VideoNode, arguments: Mapping[str, object]) -> vs.VideoNode:
    result: vs.VideoNode = getattr(vs.core.vfi, name)(clip, **plugin_arguments(arguments))
    return result


def RIFE(clip: vs.VideoNode, multi: int | None = None, factor_num: int | None = None, factor_den: int | None = None,
         fps_num: int | None = None, fps_den: int | None = None, model: str | None = None,
         model_path: PathArgument | None = None, scale: float | None = None, ensemble: int | None = None,
         sc: int | None = None, sc_threshold: float | None = None, device: str | None = None,
         precision: str | None = None, tile: int | None = None, tile_overlap: int | None = None) -> vs.VideoNode:
    """Raise the frame rate of ``clip`` with RIFE: ``core.vfi.RIFE`` (README.md, section ``core.vfi.RIFE``).

    None leaves a parameter to the plugin, whose defaults are:
    multi=2 (or factor_num/factor_den, or fps_num/fps_den: the target rate), model="4.0",
    model_path=None (the registry's verified weights), scale=1.0 (0: chosen from the frame size), ensemble=0,
    sc=0, sc_threshold=0.12, device="auto", precision="auto", tile=0 (automatic),
    tile_overlap=64 (tile/4 below tile=256).
    Bad arguments raise ``vapoursynth.Error`` with a message that starts with ``vfi.RIFE:``.
    """
    # Captured first, so it holds exactly the parameters above and nothing else.
    arguments = dict(locals())
    del arguments["clip"]
    return _call_filter("RIFE", clip, arguments)


def RRIN(clip: vs.VideoNode, multi: int | None = None, factor_num: int | None = None, factor_den: int | None = None,
         fps_num: int | None = None, fps_den: int | None = None, model: str | None = None,
         model_path: PathArgument | None = None, sc: int | None = None, sc_threshold: float | None = None,
         device: str | None = None, precision: str | None = None, tile: int | None = None,
         tile_overlap: int | None = None) -> vs.VideoNode:
    """Raise the frame rate of ``clip`` with RRIN: ``core.vfi.RRIN`` (README.md, section ``core.vfi.RRIN``).

    None leaves a parameter to the plugin, whose defaults are:
    multi=2 (or factor_num/factor_den, or fps_num/fps_den: the target rate), model="rrin" (or "rrin-official",
    "rrin-fork"), model_path=None (needed until the rrin weights are released), sc=0, sc_threshold=0.12,
    device="auto", precision="auto", tile=0 (automatic), tile_overlap=64 (tile/4 below tile=256).
    Bad arguments raise ``vapoursynth.Error`` with a message that starts with ``vfi.RRIN:``.
    """
    # Captured first, so it holds exactly the parameters above and nothing else.
    arguments = dict(locals())
    del arguments["clip"]
    return _call_filter("RRIN", clip, arguments)
