"""vapoursynth-vfi: video frame interpolation (RIFE, RRIN) for VapourSynth."""

__version__ = "0.1.0"
