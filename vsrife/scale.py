"""``scale=0``: the flow resolution chosen from the frame size, by the rule benchmarks/studies/scale_rule.py chose."""

from __future__ import annotations

from .parameters import PARAMETERS, Value

# scale=0 asks the engine to choose the flow resolution from the frame size (AUTO_SCALE_RULE).
AUTO_SCALE = 0.0

# The scales one may choose: what the scale row allows, but AUTO_SCALE.
SCALES: tuple[float, ...] = tuple(float(allowed.value) for allowed in PARAMETERS["scale"].allowed
                                  if isinstance(allowed, Value) and allowed.value != AUTO_SCALE)

# (largest pixel count, scale) rows, first match wins, else AUTO_SCALE_LARGEST: chosen by
# benchmarks/studies/scale_rule.py.
AUTO_SCALE_RULE: tuple[tuple[int, float], ...] = (
    (320 * 144, 2.0),  # 256x144 and 320x136 measured; fast motion at 320x180 is worse at 2
    (2560 * 1600, 1.0),  # 2560x1440 measured; small motion there is worse at 0.5
)
AUTO_SCALE_LARGEST = 0.5  # 3840x1632 and 3840x2160 measured


def auto_scale(width: int, height: int) -> float:
    """The flow resolution scale=0 stands for, for frames of width x height."""
    pixels = width * height
    return next((scale for limit, scale in AUTO_SCALE_RULE if pixels <= limit), AUTO_SCALE_LARGEST)
