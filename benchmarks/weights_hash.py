"""What content verification costs: SHA-256 of RIFE 4.0's cached file against loading and building the net.

Run: `.venv/bin/python benchmarks/weights_hash.py [--repeats 7]` (the 4.0 weights must be cached: `python -m vsrife
models download 4.0`). Medians over the repeats, file in the page cache (warm); replaces the "Weight verification"
section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import update_section  # noqa: E402

from vsrife import registry, weights  # noqa: E402
from vsrife.models import build_model  # noqa: E402

SECTION = "## Weight verification"


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
    from bench import cpu_name

    rows = [f"| SHA-256 of 4.0's {path.name} ({path.stat().st_size / 1e6:.1f} MB) | {hashing * 1000:.0f} ms |",
            f"| torch.load + build the net | {loading * 1000:.0f} ms |"]
    print(*rows, sep="\n")
    update_section(SECTION, (
        f"{SECTION}\n\n"
        "What hashing cached weights on every load costs (`benchmarks/weights_hash.py`, median of "
        f"{args.repeats}, file in the page cache, {datetime.date.today().isoformat()} on {cpu_name()}).\n\n"
        "| step | time |\n| --- | --- |\n" + "\n".join(rows) + "\n"))


if __name__ == "__main__":
    main()
