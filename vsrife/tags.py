"""What the frames piped to ffmpeg do not carry and ffmpeg is told beside them: the colour description, the pixel
aspect ratio, HDR10 static metadata, where the video starts; and padding to a size the encoder takes."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from .hdr import HdrMetadata


@dataclass(frozen=True)
class VideoTags:
    """The tags of one video stream, applied to ffmpeg's input (HDR10, start) and as filters (the rest)."""

    colour: dict[str, int | str] = field(default_factory=dict)  # setparams options (media.colour_options)
    sar: Fraction | None = None
    hdr: HdrMetadata | None = None  # given to ffmpeg as input options: the encoder and the container take it
    pad: tuple[int, int] = (0, 0)  # columns on the right, rows at the bottom, repeating the edge pixels
    start_s: float = 0.0  # where the first frame is shown: after the source's audio, when its video starts later

    def input_options(self) -> dict[str, str]:
        options = {} if self.hdr is None else {"mastering_display": self.hdr.mastering_display,
                                                 "content_light": self.hdr.content_light}
        if self.start_s:
            options["itsoffset"] = f"{self.start_s:.6f}"
        return {key: value for key, value in options.items() if value}

    def filtered(self, video: Any) -> Any:
        """The ffmpeg-python video stream with the tags applied (filters: encoders read these from the frames)."""
        if self.colour:
            video = video.filter("setparams", **self.colour)
        if self.sar is not None:
            video = video.filter("setsar", sar=f"{self.sar.numerator}/{self.sar.denominator}",
                                 max=max(self.sar.numerator, self.sar.denominator, 100))
        if any(self.pad):
            right, bottom = self.pad
            video = video.filter("pad", f"iw+{right}", f"ih+{bottom}").filter(
                "fillborders", right=right, bottom=bottom, mode="smear")
        return video
