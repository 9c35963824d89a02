"""vapoursynth-vfi: video frame interpolation (RIFE) for VapourSynth.

``vsrife.RIFE`` and ``vsrife.RRIN`` are typed wrappers of ``core.vfi.RIFE`` and ``core.vfi.RRIN`` (vsrife/api.py).
"""

from __future__ import annotations

from importlib.metadata import version as _installed_version
from typing import TYPE_CHECKING

# defined once, in pyproject.toml; the plugin registers its major.minor with VapourSynth
__version__ = _installed_version("vapoursynth-vfi")

__all__ = ["RIFE", "RRIN", "__version__"]

if TYPE_CHECKING:
    from .api import RIFE, RRIN

_API_NAMES = frozenset({"RIFE", "RRIN"})


def __getattr__(name: str) -> object:
    # Lazy: the plugin imports this package from inside VapourSynth, which must not import vapoursynth back.
    if name in _API_NAMES:
        from . import api

        value = getattr(api, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
