"""vapoursynth-vfi: video frame interpolation (RIFE) for VapourSynth."""

__version__ = "0.1.0"
