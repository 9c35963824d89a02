"""The rules between filter parameters, one function each. The plugin's checks reach them through
``vsrife.engine.create_engine``, which every filter instance calls at creation, and direct callers of
``create_engine`` (tests, benchmarks) get them there too: the same answer and the same message everywhere.

Rules of a single parameter are its row's ``allowed`` (vsrife/parameters.py). The rate group (one way of giving the
rate, num/den given together, a factor above 1) is the plugin's own arithmetic (plugin/arguments.cpp, rate.h); Python
asks the plugin through ``core.vfi.Rate`` (vsrife/rate.py) instead of restating it. Rules that need the model (a tile
at least its alignment, ensemble only where it has one) are the engine's.

Imports nothing heavy.
"""

from __future__ import annotations

from .parameters import PARAMETERS, ParameterError


def tile_overlap(tile: int, overlap: int | None) -> int:
    """The overlap of tiles of ``tile`` pixels (0: automatic) when ``overlap`` is given (None: not given), once each
    passed its row's ``allowed``. Not given: the table's default, capped at tile/4 for small tiles. It must be less
    than tile/2, so that each tile keeps pixels of its own; ParameterError otherwise."""
    if overlap is None:
        default = PARAMETERS["tile_overlap"].default
        assert isinstance(default, int)
        overlap = min(default, tile // 4) if tile > 0 else default
    if tile > 0 and overlap > (tile - 1) // 2:  # overlap < tile/2 in integers
        raise ParameterError(f"tile_overlap must be less than tile/2 (got tile_overlap={overlap} with tile={tile})")
    return overlap
