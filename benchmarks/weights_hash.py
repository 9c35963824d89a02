"""What content verification costs: SHA-256 of RIFE 4.0's cached file against loading and building the net.

Medians over the repeats, file in the page cache (warm); the 4.0 weights are fetched into the cache when absent.

Run: `python -m benchmarks.weights_hash [--repeats 7]`; writes benchmarks/results/weights_hash.json.
"""

from __future__ import annotations

import argparse
import sys

from vsrife import registry, weights
from vsrife.models import build_model

from . import harness, render


def measure(repeats: int) -> dict[str, object]:
    entry = registry.get_model("4.0")
    (weight,) = entry.files
    path = weights.resolve_weight_files(entry, None)[weight.role]
    hashing = harness.median_seconds(lambda: weights.sha256_of(path), repeats)
    loading = harness.median_seconds(
        lambda: build_model(entry.architecture, weights.load_state_dicts({weight.role: path})), repeats)
    return {"repeats": repeats, "file": path.name, "size_mb": path.stat().st_size / 1e6, "hash_ms": hashing * 1000,
            "load_ms": loading * 1000}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    return render.publish({"weights_hash": measure(args.repeats)},
                          f"python -m benchmarks.weights_hash --repeats {args.repeats}")


if __name__ == "__main__":
    sys.exit(main())
