"""What content verification costs: SHA-256 of RIFE 4.0's cached file against loading and building the net.

Run: `.venv/bin/python benchmarks/weights_hash.py [--repeats 7]` (the 4.0 weights must be cached: `python -m vsrife
models download 4.0`). Medians over the repeats, file in the page cache (warm).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from vsrife import registry, weights
from vsrife.models import build_model


def median_seconds(action: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    entry = registry.get_model("4.0")
    (weight,) = entry.files
    path = weights.cached_path(entry, weight)
    hashing = median_seconds(lambda: weights.sha256_of(path), args.repeats)
    loading = median_seconds(lambda: build_model(entry.architecture, weights.load_state_dicts({weight.role: path})),
                             args.repeats)
    print(f"SHA-256 of {path.name} ({path.stat().st_size / 1e6:.1f} MB): {hashing * 1000:.0f} ms")
    print(f"torch.load + build the net: {loading * 1000:.0f} ms")


if __name__ == "__main__":
    main()
