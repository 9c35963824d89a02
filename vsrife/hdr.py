"""HDR metadata of a source: the HDR10 static metadata it keeps, the per-frame metadata it cannot keep, the
transfers that make a signal HDR."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HdrMetadata:
    """HDR10 static metadata in the x265 / ffmpeg notation (``G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min)``,
    ``MaxCLL,MaxFALL``)."""

    mastering_display: str | None
    content_light: str | None

    def describe(self) -> str:
        return " and ".join(name for name, value in (("the mastering display", self.mastering_display),
                                                     ("MaxCLL/MaxFALL", self.content_light)) if value)


# Per-frame metadata that BestSource exports and the y4m pipe (and our frames) cannot carry: prop -> what it is.
DYNAMIC_HDR_PROPS = {"HDR10Plus": "HDR10+ dynamic metadata (SMPTE ST 2094-40)",
                     "DolbyVisionRPU": "Dolby Vision metadata (RPU)"}
# _Transfer values of HDR signals: SMPTE ST 2084 (PQ) and ARIB STD-B67 (HLG).
HDR_TRANSFERS = (16, 18)


def hdr_metadata(props: Mapping[str, Any]) -> HdrMetadata | None:
    """The HDR10 static metadata of a frame (BestSource's props), or None when it has none."""
    mastering = None
    keys = ("MasteringDisplayPrimariesX", "MasteringDisplayPrimariesY", "MasteringDisplayWhitePointX",
            "MasteringDisplayWhitePointY", "MasteringDisplayMaxLuminance", "MasteringDisplayMinLuminance")
    if all(key in props for key in keys):
        xs, ys = props["MasteringDisplayPrimariesX"], props["MasteringDisplayPrimariesY"]  # red, green, blue

        def point(x: float, y: float) -> str:  # chromaticity in units of 0.00002
            return f"({round(x * 50000)},{round(y * 50000)})"

        mastering = (f"G{point(xs[1], ys[1])}B{point(xs[2], ys[2])}R{point(xs[0], ys[0])}"
                     f"WP{point(props['MasteringDisplayWhitePointX'], props['MasteringDisplayWhitePointY'])}"
                     f"L({round(props['MasteringDisplayMaxLuminance'] * 10000)},"
                     f"{round(props['MasteringDisplayMinLuminance'] * 10000)})")  # cd/m2 in units of 0.0001
    light = None
    if "ContentLightLevelMax" in props:
        light = f"{int(props['ContentLightLevelMax'])},{int(props.get('ContentLightLevelAverage', 0))}"
    return None if mastering is None and light is None else HdrMetadata(mastering, light)
